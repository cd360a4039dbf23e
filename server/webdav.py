"""The WebDAV protocol of an account's view: paths <-> object names, request headers and XML bodies.

No Tornado and no database here: `davstore.py` answers what exists, `handlers/dav.py` speaks HTTP.
What rclone's webdav backend (vendor = owncloud) depends on, from its source (backend/webdav):
PROPFIND answers list the resource itself first, its 200 propstat first; `getlastmodified` is RFC 1123;
`oc:checksums` holds "SHA1:... MD5:..."; a redirect on PROPFIND is read as "not found", so a folder is
answered at `dir` and `dir/` alike; MKCOL on an existing folder is 405; PUT carries `X-OC-Mtime`
(unix seconds) and `OC-Checksum` ("SHA1:hex" or "MD5:hex").
"""

from __future__ import annotations

import email.utils
import math
import re
import unicodedata
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from lockr_local.errors import BadRequest, InvalidName
from lockr_local.names import normalize_name
from lockr_local.server.wire import http_date, iso8601

DAV = "DAV:"
OC = "http://owncloud.org/ns"
PREFIX = "/dav"
MAX_XML_BODY = 1024 * 1024

Prop = tuple[str, str]  # (namespace, local name)

RESOURCETYPE: Prop = (DAV, "resourcetype")
CONTENTLENGTH: Prop = (DAV, "getcontentlength")
LASTMODIFIED: Prop = (DAV, "getlastmodified")
ETAG: Prop = (DAV, "getetag")
CONTENTTYPE: Prop = (DAV, "getcontenttype")
DISPLAYNAME: Prop = (DAV, "displayname")
CREATIONDATE: Prop = (DAV, "creationdate")
SUPPORTEDLOCK: Prop = (DAV, "supportedlock")
LOCKDISCOVERY: Prop = (DAV, "lockdiscovery")
QUOTA_USED: Prop = (DAV, "quota-used-bytes")
QUOTA_AVAILABLE: Prop = (DAV, "quota-available-bytes")
CHECKSUMS: Prop = (OC, "checksums")
PERMISSIONS: Prop = (OC, "permissions")

# allprop: the live properties of RFC 4918 plus ownCloud's checksums (RFC 4331 quotas only on request).
ALLPROP: tuple[Prop, ...] = (RESOURCETYPE, CONTENTLENGTH, LASTMODIFIED, ETAG, CONTENTTYPE, DISPLAYNAME,
                             CREATIONDATE, SUPPORTEDLOCK, CHECKSUMS)
# Properties a client may set with PROPPATCH that change the stored modification time.
MTIME_PROPS = {(DAV, "lastmodified"), (DAV, "getlastmodified"),
               ("urn:schemas-microsoft-com:", "Win32LastModifiedTime")}


@dataclass(frozen=True)
class DavPath:
    """A request path: `/dav/` (account None), `/dav/ACCOUNT/` (name ""), or `/dav/ACCOUNT/NAME`."""

    account: str | None
    name: str

    @property
    def parent(self) -> str:
        return self.name.rpartition("/")[0]


@dataclass(frozen=True)
class Resource:
    """One file or folder as PROPFIND shows it; `name` is the object name ("" = the account root)."""

    name: str
    is_dir: bool
    mtime: float
    size: int = 0
    etag: str = ""
    content_type: str = ""
    sha1: str = ""
    md5: str = ""
    created: float | None = None


@dataclass(frozen=True)
class Quota:
    used: int
    available: int


@dataclass(frozen=True)
class PropRequest:
    """What a PROPFIND asks for: every property, only their names, or the listed ones."""

    mode: str  # "allprop" | "propname" | "prop"
    props: tuple[Prop, ...] = ()


# -- paths --------------------------------------------------------------------------------------

def parse_path(raw_path: str) -> DavPath:
    """Maps a percent-encoded request path under /dav to (account, object name); 400 when unusable."""
    if raw_path != PREFIX and not raw_path.startswith(PREFIX + "/"):
        raise BadRequest("WebDAV paths start with /dav/ACCOUNT/.")
    try:
        text = unquote(raw_path[len(PREFIX):], encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidName("The path is not valid UTF-8.") from exc
    text = unicodedata.normalize("NFC", text)
    segments = [s for s in text.split("/") if s]
    if not segments:
        return DavPath(None, "")
    account, rest = segments[0], "/".join(segments[1:])
    if not rest:
        return DavPath(account, "")
    if any(s in (".", "..") for s in segments[1:]):
        raise InvalidName("The path contains a '.' or '..' segment.")
    return DavPath(account, normalize_name(rest))


def parse_destination(header: str | None) -> DavPath:
    """The Destination of MOVE/COPY: an absolute URL or path under /dav (the host is not trusted)."""
    if not header:
        raise BadRequest("MOVE and COPY need a Destination header.")
    try:
        path = urlsplit(header.strip()).path
    except ValueError as exc:  # 'http://[::1' and other unparseable hosts
        raise BadRequest(f"The Destination header is not a URL or a path under /dav/: {exc}.") from exc
    return parse_path(path)


def href(account: str | None, name: str, is_dir: bool) -> str:
    """The percent-encoded href of a resource; folders end with '/'."""
    path = PREFIX + "/"
    if account is not None:
        path += quote(account, safe="") + "/"
        if name:
            path += quote(name, safe="/") + ("/" if is_dir else "")
    return path


def display_name(account: str | None, name: str) -> str:
    return name.rpartition("/")[2] if name else (account or "")


# -- headers ------------------------------------------------------------------------------------

def parse_mtime(value: str | None) -> float | None:
    """X-OC-Mtime or a PROPPATCH'd lastmodified: unix seconds, or an HTTP date; 400 for nonsense."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"{text!r} is not a modification time (unix seconds or an HTTP date).") from exc
        seconds = parsed.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds < 2**33:
        raise BadRequest(f"{text!r} is not a plausible modification time.")
    return seconds


_CHECKSUM = re.compile(r"([A-Za-z0-9]+):([0-9A-Fa-f]+)")
_DIGEST_LENGTHS = {"sha1": 40, "md5": 32, "sha256": 64}


def parse_oc_checksum(value: str | None) -> dict[str, str]:
    """OC-Checksum 'SHA1:hex' (several may be space-separated) -> {'sha1': hex}; unknown kinds are ignored."""
    if not value or not value.strip():
        return {}
    wanted: dict[str, str] = {}
    for part in value.split():
        match = _CHECKSUM.fullmatch(part)
        if not match:
            raise BadRequest(f"OC-Checksum {part!r} is not 'TYPE:hex' such as 'SHA1:...'.")
        kind, digest = match.group(1).lower(), match.group(2).lower()
        if kind in _DIGEST_LENGTHS:
            if len(digest) != _DIGEST_LENGTHS[kind]:
                raise BadRequest(f"OC-Checksum {part!r} has the wrong length for {kind.upper()}.")
            wanted[kind] = digest
    return wanted


def parse_depth(value: str | None, default: str) -> str:
    depth = (value or default).strip().lower()
    if depth not in ("0", "1", "infinity"):
        raise BadRequest("Depth must be 0, 1 or infinity.")
    return depth


def parse_overwrite(value: str | None) -> bool:
    text = (value or "T").strip().upper()
    if text not in ("T", "F"):
        raise BadRequest("Overwrite must be T or F.")
    return text == "T"


# -- request bodies -----------------------------------------------------------------------------

def _parse_xml(body: bytes, what: str) -> ElementTree.Element | None:
    if not body.strip():
        return None
    # The parser itself refuses DTDs, entity declarations and external references, whatever the body's
    # encoding (a byte search for '<!DOCTYPE' misses UTF-16): no entity expansion, no file or URL fetch.
    try:
        return SafeElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadRequest(f"The {what} body may not declare a DOCTYPE, entities or external references.") from exc
    except ElementTree.ParseError as exc:
        raise BadRequest(f"The {what} body is not well-formed XML: {exc}.") from exc
    except ValueError as exc:
        # pyexpat's answer to an encoding it cannot read ("multi-byte encodings are not supported").
        raise BadRequest(f"The {what} body's XML encoding is not supported ({exc}); send UTF-8.") from exc


def _split(tag: str) -> Prop:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def parse_propfind(body: bytes) -> PropRequest:
    """An empty body means allprop (RFC 4918 9.1); otherwise allprop, propname or a prop list."""
    root = _parse_xml(body, "PROPFIND")
    if root is None:
        return PropRequest("allprop")
    if _split(root.tag) != (DAV, "propfind"):
        raise BadRequest("A PROPFIND body must be a DAV:propfind element.")
    for child in root:
        kind = _split(child.tag)
        if kind == (DAV, "propname"):
            return PropRequest("propname")
        if kind == (DAV, "allprop"):
            return PropRequest("allprop")
        if kind == (DAV, "prop"):
            return PropRequest("prop", tuple(_split(p.tag) for p in child))
    return PropRequest("allprop")


def wants_quota(request: PropRequest) -> bool:
    """RFC 4331 quotas are reported only when asked for by name (they cost a query)."""
    return request.mode == "prop" and (QUOTA_USED in request.props or QUOTA_AVAILABLE in request.props)


def parse_proppatch(body: bytes) -> list[tuple[Prop, str | None]]:
    """The (property, new text or None for remove) pairs of a PROPPATCH, in order."""
    root = _parse_xml(body, "PROPPATCH")
    if root is None or _split(root.tag) != (DAV, "propertyupdate"):
        raise BadRequest("A PROPPATCH body must be a DAV:propertyupdate element.")
    changes: list[tuple[Prop, str | None]] = []
    for action in root:
        kind = _split(action.tag)
        if kind not in ((DAV, "set"), (DAV, "remove")):
            continue
        for prop in action.iter(f"{{{DAV}}}prop"):
            for item in prop:
                changes.append((_split(item.tag), (item.text or "").strip() if kind == (DAV, "set") else None))
    return changes


# -- response bodies ----------------------------------------------------------------------------

_STATUS_TEXT = {200: "OK", 403: "Forbidden", 404: "Not Found", 424: "Failed Dependency"}
_PREFIXES = {DAV: "d", OC: "oc"}


def _tag(prop: Prop) -> tuple[str, str]:
    """(open-tag name with any xmlns declaration, close-tag name) for a property."""
    namespace, local = prop
    prefix = _PREFIXES.get(namespace)
    if prefix:
        return f"{prefix}:{local}", f"{prefix}:{local}"
    if not namespace:
        return local, local
    return f'x:{local} xmlns:x="{escape(namespace, {chr(34): "&quot;"})}"', f"x:{local}"


def _element(prop: Prop, inner: str | None = None) -> str:
    open_tag, close_tag = _tag(prop)
    return f"<{open_tag}/>" if inner is None or inner == "" else f"<{open_tag}>{inner}</{close_tag}>"


def _value(resource: Resource, prop: Prop, quota: Quota | None) -> str | None:
    """The XML content of a property of the resource, or None when it has no such property."""
    if prop == RESOURCETYPE:
        return "<d:collection/>" if resource.is_dir else ""
    if prop == LASTMODIFIED:
        return http_date(resource.mtime)
    if prop == CREATIONDATE:
        return iso8601(resource.created if resource.created is not None else resource.mtime)
    if prop == DISPLAYNAME:
        return escape(resource.name.rpartition("/")[2])
    if prop == SUPPORTEDLOCK:
        return ("<d:lockentry><d:lockscope><d:exclusive/></d:lockscope><d:locktype><d:write/></d:locktype>"
                "</d:lockentry>")
    if prop == LOCKDISCOVERY:
        return ""
    if prop == PERMISSIONS:
        return "RDNVCK" if resource.is_dir else "RDNVW"
    if prop in (QUOTA_USED, QUOTA_AVAILABLE):
        if quota is None or not resource.is_dir:
            return None
        return str(quota.used if prop == QUOTA_USED else quota.available)
    if resource.is_dir:
        return None
    if prop == CONTENTLENGTH:
        return str(resource.size)
    if prop == ETAG:
        return escape(f'"{resource.etag}"')
    if prop == CONTENTTYPE:
        return escape(resource.content_type)
    if prop == CHECKSUMS:
        parts = ([f"SHA1:{resource.sha1}"] if resource.sha1 else []) + ([f"MD5:{resource.md5}"] if resource.md5 else [])
        return f"<oc:checksum>{' '.join(parts)}</oc:checksum>" if parts else None
    return None


def _propstat(props: Iterable[str], status: int) -> str:
    return (f"<d:propstat><d:prop>{''.join(props)}</d:prop>"
            f"<d:status>HTTP/1.1 {status} {_STATUS_TEXT[status]}</d:status></d:propstat>")


def response_xml(account: str | None, resource: Resource, request: PropRequest, quota: Quota | None) -> str:
    """One <d:response>: the 200 propstat first (rclone reads only the first status), then a 404 one."""
    found: list[str] = []
    missing: list[str] = []
    if request.mode == "propname":
        names = [p for p in ALLPROP if _value(resource, p, quota) is not None]
        found = [_element(p) for p in names]
    else:
        wanted = ALLPROP if request.mode == "allprop" else request.props
        for prop in wanted:
            value = _value(resource, prop, quota)
            if value is None:
                if request.mode == "prop":
                    missing.append(_element(prop))
            else:
                found.append(_element(prop, value))
    parts = [f"<d:response><d:href>{escape(href(account, resource.name, resource.is_dir))}</d:href>"]
    if found or not missing:
        parts.append(_propstat(found, 200))
    if missing:
        parts.append(_propstat(missing, 404))
    parts.append("</d:response>")
    return "".join(parts)


def multistatus(responses: Iterable[str]) -> bytes:
    body = "".join(responses)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n'
            f'<d:multistatus xmlns:d="DAV:" xmlns:oc="{OC}">{body}</d:multistatus>\n').encode("utf-8")


def proppatch_response(account: str | None, resource: Resource, changes: list[tuple[Prop, str | None]]) -> bytes:
    """Every property is reported as set: Windows and macOS clients send Win32 and Finder properties
    and give up on a 403; only the modification time is actually kept."""
    props = [_element(prop) for prop, _ in changes]
    return multistatus([f"<d:response><d:href>{escape(href(account, resource.name, resource.is_dir))}</d:href>"
                        f"{_propstat(props, 200)}</d:response>"])


def lock_response(token: str, owner_xml: str, timeout: str) -> bytes:
    """The body of a LOCK: clients (Finder, Windows, davfs2) need one before they write; locks are
    advisory here and never block anyone."""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<d:prop xmlns:d="DAV:"><d:lockdiscovery><d:activelock>'
            f"<d:locktype><d:write/></d:locktype><d:lockscope><d:exclusive/></d:lockscope>"
            f"<d:depth>infinity</d:depth>{owner_xml}<d:timeout>{escape(timeout)}</d:timeout>"
            f"<d:locktoken><d:href>{escape(token)}</d:href></d:locktoken>"
            f"</d:activelock></d:lockdiscovery></d:prop>\n").encode("utf-8")


def lock_owner(body: bytes) -> str:
    """The <d:owner> of a LOCK request, echoed back as the RFC asks."""
    root = _parse_xml(body, "LOCK")
    if root is None:
        return ""
    owner = root.find(f"{{{DAV}}}owner")
    if owner is None:
        return ""
    text = "".join(owner.itertext()).strip()
    return f"<d:owner>{escape(text)}</d:owner>" if text else ""
