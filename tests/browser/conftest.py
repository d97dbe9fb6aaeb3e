"""Browser fixtures: every page a test opens is watched for what a person would not see
but would suffer from, namely CSP violations and uncaught script errors."""

import pytest
from playwright.sync_api import Browser, BrowserContext, Page


class PageProblems:
    """Collects CSP violations and script errors from every page it watches."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def watch(self, page: Page) -> Page:
        """Start recording this page's problems; return the page."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"script error: {error}"))
        return page

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.seen.append(f"CSP violation on {message.location.get('url')}: {message.text}")


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(page: Page, page_problems: PageProblems):
    """pytest-playwright's page, failing the test if it hit a CSP violation or script error."""
    page_problems.watch(page)
    yield page
    assert page_problems.seen == []


@pytest.fixture
def second_person(browser: Browser, page_problems: PageProblems):
    """Open a browser of someone else's (own cookies), watched like `page`; closed after."""
    contexts: list[BrowserContext] = []

    def second_person() -> Page:
        context = browser.new_context()
        contexts.append(context)
        return page_problems.watch(context.new_page())

    yield second_person
    for context in contexts:
        context.close()
    assert page_problems.seen == []
