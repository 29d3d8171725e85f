"""Object-store URLs and credentials from the environment (pure functions).

URL forms (see ``storage.objects.service.ObjectService.open_url``)::

    file:///abs/path/container[/prefix]
    swift://[STORE@]container[/prefix]
    s3://[STORE@]bucket[/prefix]

Container and prefix are percent-decoded. The prefix has no leading or trailing '/'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from storage.errors import InvalidInput

SCHEMES = ("file", "swift", "s3")
ACCEPTED_URLS = "file:///abs/path/container[/prefix], swift://[STORE@]container[/prefix], s3://[STORE@]bucket[/prefix]"


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    store_name: str | None  # swift/s3: the STORE@ part
    container: str  # swift/s3 only; "" for file
    prefix: str  # swift/s3 only; "" for file
    path: str  # file only: the absolute path


def parse_url(url: str) -> ParsedUrl:
    """Split an object-store URL; raise InvalidInput naming the accepted forms."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidInput(f"object store URL {url!r} is not accepted; accepted: {ACCEPTED_URLS}", field="url")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInput(
            f"object store URL scheme {scheme!r} is not accepted; accepted: {ACCEPTED_URLS}", field="url"
        )
    if scheme == "file":
        if not rest.startswith("/"):
            raise InvalidInput(
                f"file URL {url!r} must have an absolute path (three slashes: file:///path); accepted: {ACCEPTED_URLS}",
                field="url",
            )
        path = "/" + "/".join(p for p in unquote(rest).split("/") if p and p != ".")
        if ".." in path.split("/"):
            raise InvalidInput(f"file URL {url!r} must not contain '..'", field="url")
        if path == "/":
            raise InvalidInput(f"file URL {url!r} names no container; accepted: {ACCEPTED_URLS}", field="url")
        return ParsedUrl("file", None, "", "", path)
    store_name: str | None = None
    head, _, tail = rest.partition("/")
    if "@" in head:
        store_name, _, head = head.rpartition("@")
        if not store_name:
            raise InvalidInput(f"object store URL {url!r} has an empty store name before '@'", field="url")
    container = unquote(head)
    if not container:
        raise InvalidInput(f"object store URL {url!r} names no container; accepted: {ACCEPTED_URLS}", field="url")
    prefix = unquote(tail).strip("/")
    return ParsedUrl(scheme, store_name, container, prefix, "")


def format_url(scheme: str, container: str, prefix: str = "", store_name: str | None = None, root: str | None = None) -> str:
    """The URL of a location, without any secret."""
    tail = f"/{quote(prefix)}" if prefix else ""
    if scheme == "file":
        return f"file://{quote(root or '')}/{quote(container)}{tail}"
    who = f"{store_name}@" if store_name else ""
    return f"{scheme}://{who}{quote(container, safe='')}{tail}"


def swift_env_options(env: Mapping[str, str]) -> dict[str, str] | None:
    """Swift credentials from ST_AUTH/ST_USER/ST_KEY, OS_* (Keystone v3) or a preauth token."""
    if env.get("ST_AUTH"):
        opts = {"auth_url": env["ST_AUTH"]}
        if env.get("ST_USER"):
            opts["user"] = env["ST_USER"]
        if env.get("ST_KEY"):
            opts["key"] = env["ST_KEY"]
        return opts
    if env.get("OS_AUTH_TOKEN") and env.get("OS_STORAGE_URL"):
        return {"preauth_token": env["OS_AUTH_TOKEN"], "storage_url": env["OS_STORAGE_URL"]}
    if env.get("OS_AUTH_URL"):
        mapping = {
            "OS_AUTH_URL": "auth_url",
            "OS_USERNAME": "username",
            "OS_PASSWORD": "password",
            "OS_PROJECT_NAME": "project_name",
            "OS_PROJECT_ID": "project_id",
            "OS_USER_DOMAIN_NAME": "user_domain_name",
            "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
            "OS_REGION_NAME": "region_name",
        }
        opts = {dst: env[src] for src, dst in mapping.items() if env.get(src)}
        opts["auth_version"] = "3"
        return opts
    return None


def s3_env_options(env: Mapping[str, str]) -> dict[str, str] | None:
    """S3 credentials from S3_ENDPOINT (or AWS_ENDPOINT_URL), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY."""
    endpoint = env.get("S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL")
    if not endpoint or not env.get("AWS_ACCESS_KEY_ID"):
        return None
    opts = {"endpoint": endpoint, "access_key": env["AWS_ACCESS_KEY_ID"], "secret_key": env.get("AWS_SECRET_ACCESS_KEY", "")}
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        opts["region"] = region
    return opts
