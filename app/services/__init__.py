"""The rules of Linkdeck, free of Flask request objects; views call these and commit."""
