"""The app's blueprints, one package per area."""
