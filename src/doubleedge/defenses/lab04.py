"""Lab 04's reference solution: sanitize on render, parameterize the query, a strict CSP.

The notebook's solution cell holds the same definitions (a test keeps them equal).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import nh3

from doubleedge.target.webchat import markdown_to_html

SHOP_HOSTS = {"bellwetherbikes.example", "www.bellwetherbikes.example"}
ALLOWED_TAGS = {"p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "a", "img", "code", "pre", "blockquote"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https://bellwetherbikes.example; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def shop_url(url: str) -> bool:
    """Only absolute https URLs on the shop's own hosts (no relative tricks like //host or /\\host)."""
    parts = urlsplit(url.strip())
    return parts.scheme == "https" and (parts.hostname or "") in SHOP_HOSTS and parts.username is None


def keep_shop_urls(tag: str, attribute: str, value: str) -> str | None:
    if attribute in ("href", "src"):
        return value if shop_url(value) else None
    return value


def render(reply: str) -> str:
    """Markdown to HTML, then nh3 (a maintained sanitizer): allow-listed tags, attributes and hosts."""
    return nh3.clean(
        markdown_to_html(reply),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"https"},
        attribute_filter=keep_shop_urls,
        link_rel="noopener noreferrer nofollow",
    )


def order_query(customer: str, number: str) -> tuple[str, list]:
    """The statement is fixed; the customer and the model's answer travel as parameters."""
    return "SELECT number, item, status, total FROM orders WHERE customer = ? AND number = ?", [customer, number]
