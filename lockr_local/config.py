"""Declared settings, resolved once (defaults < file < LOCKR_* env < flags) into a frozen Settings."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlsplit

from lockr_local.errors import BadRequest


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and the fix."""


_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_size(text: str | int) -> int:
    """'100GB' -> 100_000_000_000, '5 GiB' -> 5 * 2**30, '1024' -> 1024 (decimal units as the lockr plans use)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise SettingsError(f"{text!r} is not a size; write it like 1048576, 500MB, 100GB or 5GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def is_postgresql(database_url: str) -> bool:
    """Whether `database_url` names PostgreSQL (else SQLite); here, not in the models, so that `serve` can
    tell before peewee is imported (server_cmds.leave_out_postgresql_driver)."""
    return database_url.split("://", 1)[0].split("+", 1)[0] in ("postgres", "postgresql", "psycopg3")


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{text!r} is not a yes/no value; use true or false")


def parse_list(text: str | list[str]) -> tuple[str, ...]:
    if isinstance(text, (list, tuple)):
        return tuple(str(item).strip() for item in text if str(item).strip())
    return tuple(part.strip() for part in str(text).split(",") if part.strip())


def parse_regions(text: str | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """'us-central1=/srv/a,eu-west1=/mnt/b' -> (('us-central1', '/srv/a'), ...). Empty = one region in data_dir."""
    if isinstance(text, Mapping):
        pairs = [(str(name), str(path)) for name, path in text.items()]
    else:
        pairs = []
        for part in parse_list(text):
            name, sep, path = part.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise SettingsError(f"region {part!r} must be written as NAME=PATH")
            pairs.append((name.strip(), path.strip()))
    for name, where in pairs:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            raise SettingsError(f"region name {name!r} may use only a-z, 0-9 and '-'")
        check_region_location(name, where)
    return tuple(pairs)


# The query parameters a bucket region's URL may carry (the rest of the AWS conventions, the
# AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION variables and ~/.aws profiles, apply as boto3 reads them).
BUCKET_OPTIONS = ("endpoint", "region", "profile", "access_key_id", "secret_access_key", "session_token",
                  "addressing_style", "presigned_downloads")


@dataclass(frozen=True)
class BucketRegion:
    """A region kept in an S3-compatible bucket: `s3://BUCKET[/PREFIX][?endpoint=...&region=...]`."""

    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    addressing_style: str | None = None
    presigned_downloads: bool | None = None  # None: the global presigned_downloads setting


def parse_bucket_url(url: str) -> BucketRegion:
    """`s3://bucket/prefix?endpoint=https://s3.example.net&region=eu-1` -> BucketRegion; SettingsError if not one."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.fragment:
        raise SettingsError(f"{url!r} is not a bucket URL such as s3://BUCKET/PREFIX?endpoint=https://HOST")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc):
        raise SettingsError(f"{parts.netloc!r} is not a bucket name (3-63 characters of a-z, 0-9, '.' and '-')")
    prefix = parts.path.strip("/")
    options: dict[str, Any] = {}
    for pair in parts.query.split("&") if parts.query else []:
        key, sep, value = pair.partition("=")
        if not sep or key not in BUCKET_OPTIONS:
            raise SettingsError(f"unknown bucket option {key!r} in {parts.scheme}://{parts.netloc}; "
                                f"known: {', '.join(BUCKET_OPTIONS)}")
        options[key] = unquote(value)
    if "endpoint" in options and origin_of(options["endpoint"], allow_path=True) is None:
        raise SettingsError(f"bucket endpoint {options['endpoint']!r} is not an http(s) URL")
    if options.get("addressing_style", "auto") not in ("auto", "path", "virtual"):
        raise SettingsError("bucket option addressing_style must be auto, path or virtual")
    if "presigned_downloads" in options:
        options["presigned_downloads"] = parse_bool(options["presigned_downloads"])
    return BucketRegion(parts.netloc, prefix + "/" if prefix else "", **options)


def check_region_location(name: str, where: str) -> None:
    """A region is an absolute folder or a supported URL (s3://); anything else is refused at start, so that a
    typo or an unsupported scheme never becomes a folder named 's3:' in the working directory."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", where)
    if scheme and scheme.group(1).lower() == "s3":
        try:
            parse_bucket_url(where)
        except SettingsError as exc:
            raise SettingsError(f"region {name}: {exc}") from None
        return
    if not Path(where).is_absolute():
        hint = (f"the URL scheme {scheme.group(1)!r} is not supported" if scheme and len(scheme.group(1)) > 1
                else "a relative folder would depend on the working directory")
        raise SettingsError(f"region {name}={where!r} is neither an absolute folder nor a supported URL "
                            f"(s3://BUCKET/PREFIX): {hint}")


def origin_of(url: str, *, allow_path: bool = False) -> str | None:
    """The web origin `scheme://host[:port]` of an http(s) URL, lower-cased and without a default port;
    None when it is not one (a path, query or user name is refused unless `allow_path`)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        return None
    if not allow_path and (parts.path not in ("", "/") or parts.query or parts.fragment):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def parse_origins(text: str | list[str]) -> tuple[str, ...]:
    """'https://app.example, http://localhost:3000' -> normalized origins; '*' stands for every origin."""
    origins = []
    for entry in parse_list(text):
        origin = "*" if entry == "*" else origin_of(entry)
        if origin is None:
            raise SettingsError(f"{entry!r} is not a web origin such as https://app.example (scheme, host and "
                                f"port only) or *")
        origins.append(origin)
    return tuple(origins)


def parse_float(text: str | float) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise SettingsError(f"{text!r} is not a number") from exc


def parse_int(text: str | int) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise SettingsError(f"{text!r} is not a whole number") from exc


def parse_str(text: Any) -> str:
    return str(text)


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str | int) -> int:
    """'14d' -> 1209600 seconds, '12h', '30m', '90s' or plain seconds; 0 means never."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]?)\s*", str(text))
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise SettingsError(f"{text!r} is not a duration; write it like 14d, 12h, 30m or a number of seconds")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_choice(*choices: str) -> Callable[[Any], str]:
    """A parser that accepts one of `choices` (case-insensitive)."""

    def parse(text: Any) -> str:
        value = str(text).strip().lower()
        if value not in choices:
            raise SettingsError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


@dataclass(frozen=True)
class Setting:
    """One declared setting: its name (also `LOCKR_NAME` and `--name`), default and help."""

    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = parse_str

    @property
    def env_var(self) -> str:
        return "LOCKR_" + self.name.upper()


def default_data_dir() -> str:
    """The platform's per-user data folder (e.g. ~/.local/share/lockr-local)."""
    import platformdirs

    return platformdirs.user_data_dir("lockr-local", appauthor=False)


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Address the server listens on; 0.0.0.0 for every interface."),
    Setting("port", 8080, "TCP port the server listens on; 0 picks a free one.", parse_int),
    Setting("data_dir", "", "Folder for the database, blobs and secrets. Empty: the platform data folder.",),
    Setting("database_url", "", "Database URL, e.g. sqlite:////srv/lockr/lockr.db. Empty: lockr.db in data_dir."),
    Setting("public_url", "", "Base URL clients reach the server at (https://files.example.org); used for links."),
    Setting("trusted_proxies", "", "Comma-separated proxy addresses whose X-Forwarded-* headers are trusted.",
            parse_list),
    Setting("cors_origins", "", "Comma-separated web origins (https://app.example) whose pages may use the tus "
            "endpoint from the browser, besides the server's own origin (public_url, else the request's host); "
            "* allows every origin.", parse_origins),
    Setting("regions", "", "Comma-separated NAME=WHERE storage regions, each an absolute folder or a bucket "
            "(s3://BUCKET/PREFIX?endpoint=https://HOST, see the README). Empty: one region 'local' in data_dir.",
            parse_regions),
    Setting("presigned_downloads", False, "Whether an authorised download of a file in a bucket region answers 302 "
            "to a short-lived presigned URL of the object store, so its bytes do not pass through the server (a "
            "region's ?presigned_downloads= overrides it); off: the server streams them. Folder regions always "
            "stream.", parse_bool),
    Setting("default_region", "local", "Region used when an upload names none and the account has no default."),
    Setting("guest_uploads", True, "Whether uploads without credentials are accepted (lockr's guest tier).",
            parse_bool),
    Setting("signup", True, "Whether POST /api/v1/account may create accounts.", parse_bool),
    Setting("guest_max_object", 5 * 10**9, "Largest object a guest may upload (bytes or 5GB).", parse_size),
    Setting("account_max_object", 100 * 10**9, "Largest object an account may upload.", parse_size),
    Setting("default_quota", 100 * 10**9, "Storage quota of a new account.", parse_size),
    Setting("inline_max", 64 * 1024, "Uploads with a Content-Length up to this size (bytes) are stored inside the "
            "database, durable with their row in one commit; 0 stores every file as a blob file.", parse_size),
    Setting("upload_buffers", 16 * 2**20, "Memory (16MiB) that the large uploads streaming in at the same time share "
            "for their socket reads and disk writes: one alone reads 1 MiB at a time, N at once a 1/N share each "
            "(64 KiB at least). Larger: less CPU per byte with many uploads at once, more memory (4MiB: 20 "
            "concurrent uploads peak about 25 MiB lower, at some 25% less throughput).", parse_size),
    Setting("session_expiry", 7 * 24 * 3600, "Seconds an unfinished upload session lives before it is reaped.",
            parse_int),
    Setting("reap_interval", 600, "Seconds between sweeps that reap expired upload sessions.", parse_int),
    Setting("idempotency_ttl", 24 * 3600, "How long (24h, 30m, seconds) an upload's Idempotency-Key is kept: a "
            "retry with the key within this time answers with the file the first request stored; 0 turns "
            "Idempotency-Key support off (the header is then ignored).", parse_duration),
    Setting("rate_guest", 20.0, "Requests per second allowed per guest address (sustained); requests with wrong "
            "credentials count here too.", parse_float),
    Setting("rate_guest_burst", 60, "Requests a guest address may make in a burst.", parse_int),
    Setting("rate_account", 100.0, "Requests per second allowed per account, and for all accounts together per "
            "client address (sustained).", parse_float),
    Setting("rate_account_burst", 300, "Requests an account (and all accounts of one client address together) may "
            "make in a burst.", parse_int),
    Setting("rate_login", 0.2, "Password attempts per second per address, and per account from addresses and "
            "browsers that never logged in to it; sign-ups per address (sustained).", parse_float),
    Setting("rate_login_burst", 10, "Password attempts (and sign-ups) allowed in a burst, per the same keys as "
            "rate_login.", parse_int),
    Setting("header_timeout", 30.0, "Seconds a client may take to send a request's headers, and to stay idle "
            "between requests.", parse_float),
    Setting("body_idle_timeout", 60.0, "Window in seconds over which an upload body must keep arriving.",
            parse_float),
    Setting("min_body_rate", 1024, "Bytes per second an upload must average over each body_idle_timeout window; "
            "slower bodies are cut off.", parse_int),
    Setting("page_size", 100, "Default number of files per page of GET /api/v1/files.", parse_int),
    Setting("max_page_size", 1000, "Largest page a client may ask for with ?limit=.", parse_int),
    Setting("max_link_lifetime", 30 * 24 * 3600, "Longest lifetime of a signed download link, in seconds.",
            parse_int),
    Setting("password_kdf_memory", 64 * 2**20, "Memory of the argon2id hash of new passwords (64MiB); at least "
            "19MiB (OWASP's minimum).", parse_size),
    Setting("password_kdf_time", 3, "Passes of the argon2id hash of new passwords over its memory; at least 2.",
            parse_int),
    Setting("secret_key", "", "Secret for signed links and key hashes. Empty: generated once into data_dir."),
    Setting("log_level", "info", "Log level: debug, info, warning or error."),
    Setting("access_log", "", "Where the access log (one line per request, at log level info) goes: empty for "
            "the server log (stderr), a file path to append to (reopened after logrotate moves it), or off."),
    Setting("access_log_format", "combined", "Format of the access log: combined (Apache/nginx Combined Log "
            "Format plus bytes received and seconds taken) or json (one JSON object per line).",
            parse_choice("combined", "json")),
    Setting("metrics", False, "Whether GET /metrics serves Prometheus metrics; off answers 404.", parse_bool),
    Setting("metrics_token", "", "Bearer token /metrics requires (Authorization: Bearer ...); empty: none."),
    Setting("min_free_space", 100 * 10**6, "Free space below which /healthz reports a region as low on space "
            "(503).", parse_size),
    Setting("guest_retention", 0, "How long guest uploads are kept (14d, 12h, seconds) before the reaper "
            "deletes them; 0 keeps them.", parse_duration),
    Setting("trash_retention", 30 * 86400, "How long (30d, 12h, seconds) a file its owner deleted stays in the "
            "trash, restorable and counted against the quota, before the reaper deletes it for good; 0 deletes "
            "files at once (no trash).", parse_duration),
    Setting("crash_point", "", "Test only: name of a commit step at which the server kills itself."),
    # The client side (`lockr-local upload`, `lockr-local sync`); read from the same places.
    Setting("small_file_max", 8 * 2**20, "Files below this size (bytes, 8MiB) that also fit in one chunk are "
            "uploaded by `lockr-local upload` and the sync agent in one request (POST /api/v1/upload) with an "
            "Idempotency-Key, when the endpoint advertises Accept-Idempotency-Key; larger files use resumable "
            "sessions. 0: always sessions.", parse_size),
    # The sync agent (`lockr-local sync`); read from the same places, used only by the client side.
    Setting("sync_concurrency", 8, "Files the sync agent uploads at the same time, each on a kept-alive "
            "connection (what the server's group commit shares one durable commit among).", parse_int),
    Setting("sync_bandwidth_limit", 0, "Upload bandwidth limit of the sync agent in bytes/s (2MB); 0 = none.",
            parse_size),
    Setting("sync_scan_interval", 600, "Seconds between the sync agent's full rescans of the folder.", parse_float),
    Setting("sync_delete_max_count", 1000, "Remote deletions in one sync pass above which the agent pauses.",
            parse_int),
    Setting("sync_delete_max_share", 0.5, "Share of synced files (0-1) deleted in one pass above which it pauses.",
            parse_float),
    Setting("sync_state_dir", "", "Folder of the sync agent's state databases. Empty: the user state folder."),
    Setting("sync_watch", True, "Whether the sync agent watches the folder for changes; off: only full scans "
            "(every sync_scan_interval, at start, on Sync now), for folders whose file system sends no events.",
            parse_bool),
)

INLINE_MAX_LIMIT = 16 * 2**20
# OWASP's minimum argon2id cost (Password Storage Cheat Sheet): 19 MiB, 2 passes.
PASSWORD_KDF_MIN_MEMORY = 19 * 2**20
PASSWORD_KDF_MIN_TIME = 2
# Settings of earlier versions that a config file may still hold: read, and ignored with a warning.
RETIRED_SETTINGS = {
    "password_kdf_n": "passwords are now hashed with argon2id; see password_kdf_memory and password_kdf_time",
}

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The resolved settings; built once by `load_settings` and passed explicitly to whoever needs them."""

    host: str
    port: int
    data_dir: str
    database_url: str
    public_url: str
    trusted_proxies: tuple[str, ...]
    cors_origins: tuple[str, ...]
    regions: tuple[tuple[str, str], ...]
    presigned_downloads: bool
    default_region: str
    guest_uploads: bool
    signup: bool
    guest_max_object: int
    account_max_object: int
    default_quota: int
    inline_max: int
    upload_buffers: int
    session_expiry: int
    reap_interval: int
    rate_guest: float
    rate_guest_burst: int
    rate_account: float
    rate_account_burst: int
    rate_login: float
    rate_login_burst: int
    header_timeout: float
    body_idle_timeout: float
    min_body_rate: int
    page_size: int
    max_page_size: int
    max_link_lifetime: int
    password_kdf_memory: int
    password_kdf_time: int
    secret_key: str
    log_level: str
    access_log: str
    access_log_format: str
    metrics: bool
    metrics_token: str
    min_free_space: int
    guest_retention: int
    trash_retention: int
    idempotency_ttl: int
    crash_point: str
    small_file_max: int
    sync_concurrency: int
    sync_bandwidth_limit: int
    sync_scan_interval: float
    sync_delete_max_count: int
    sync_delete_max_share: float
    sync_state_dir: str
    sync_watch: bool
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @property
    def region_paths(self) -> dict[str, Path]:
        """The regions kept in folders."""
        return {name: Path(path) for name, path in self.regions if not path.startswith("s3:")}

    @property
    def bucket_regions(self) -> dict[str, BucketRegion]:
        """The regions kept in buckets (s3://)."""
        return {name: parse_bucket_url(path) for name, path in self.regions if path.startswith("s3:")}


def load_settings(flags: Mapping[str, Any] | None = None, *, config_file: str | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Resolves every declared setting: defaults < config file (TOML) < LOCKR_* env < flags."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    sources: dict[str, str] = {s.name: "default" for s in SETTINGS}

    config_path = config_file or env.get("LOCKR_CONFIG") or ""
    if config_path:
        for name, value in _read_config_file(Path(config_path)).items():
            values[name] = value
            sources[name] = f"file {config_path}"
    for setting in SETTINGS:
        if setting.env_var in env:
            values[setting.name] = env[setting.env_var]
            sources[setting.name] = f"env {setting.env_var}"
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in _BY_NAME:
            raise SettingsError(f"unknown setting {name!r}")
        values[name] = value
        sources[name] = "flag"

    parsed: dict[str, Any] = {}
    for setting in SETTINGS:
        try:
            parsed[setting.name] = setting.parse(values[setting.name])
        except SettingsError as exc:
            raise SettingsError(f"setting {setting.name} ({sources[setting.name]}): {exc}") from exc
    return _finish(parsed, sources)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(_BY_NAME) - set(RETIRED_SETTINGS))
    if unknown:
        raise SettingsError(f"config file {path}: unknown settings {', '.join(unknown)}")
    for name in sorted(set(data) & set(RETIRED_SETTINGS)):
        logging.getLogger("lockr.config").warning("config file %s: %s is no longer used (%s)", path, name,
                                                  RETIRED_SETTINGS[name])
        del data[name]
    return data


def _finish(parsed: dict[str, Any], sources: dict[str, str]) -> Settings:
    data_dir = parsed["data_dir"] or default_data_dir()
    parsed["data_dir"] = str(Path(data_dir).expanduser().resolve())
    if not parsed["database_url"]:
        parsed["database_url"] = "sqlite:///" + str(Path(parsed["data_dir"]) / "lockr.db")
    if not parsed["regions"]:
        parsed["regions"] = ((parsed["default_region"], str(Path(parsed["data_dir"]) / "blobs")),)
    region_names = [name for name, _ in parsed["regions"]]
    if parsed["default_region"] not in region_names:
        if sources["default_region"] != "default":
            raise SettingsError(f"default_region {parsed['default_region']!r} is not one of the regions "
                                f"{', '.join(region_names)}")
        parsed["default_region"] = region_names[0]
    if parsed["password_kdf_memory"] < PASSWORD_KDF_MIN_MEMORY or parsed["password_kdf_time"] < PASSWORD_KDF_MIN_TIME:
        raise SettingsError("password_kdf_memory must be at least 19MiB and password_kdf_time at least 2 "
                            "(OWASP's minimum for argon2id)")
    if not 0 <= parsed["inline_max"] <= INLINE_MAX_LIMIT:
        # Inline bodies are held in memory while they arrive, and SQLite reads a row's blob whole.
        raise SettingsError(f"inline_max must be between 0 and {INLINE_MAX_LIMIT} bytes (16MiB)")
    if parsed["public_url"]:
        parsed["public_url"] = parsed["public_url"].rstrip("/")
        if not re.match(r"https?://[^/]+", parsed["public_url"]):
            raise SettingsError("public_url must look like https://files.example.org")
    if parsed["log_level"].lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError("log_level must be debug, info, warning or error")
    return Settings(**parsed, sources=sources)


def describe(setting_name: str) -> Setting:
    """The declaration of one setting (for --help texts)."""
    try:
        return _BY_NAME[setting_name]
    except KeyError as exc:
        raise BadRequest(f"unknown setting {setting_name}") from exc
