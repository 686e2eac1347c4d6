"""Redis URLs as they may be shown to people: without their passwords."""

from urllib.parse import urlsplit, urlunsplit


def hide_password(url: str) -> str:
    """`url` with its password, in the user part or the query, shown as `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user_info, _, host = netloc.rpartition("@")
        netloc = f"{user_info.partition(':')[0]}:***@{host}"
    query = "&".join(_hide_query_password(pair) for pair in parts.query.split("&"))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _hide_query_password(pair: str) -> str:
    name, separator, _ = pair.partition("=")
    return f"{name}=***" if separator and name == "password" else pair
