"""Credentials -> Principal (Bearer token, Basic, guest), password checks off the loop, burst protection."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lockr_local.config import Settings
from lockr_local.errors import RateLimited, Unauthorized
from lockr_local.server.cluster import hit_login_buckets
from lockr_local.server.db import Database
from lockr_local.server.models import is_postgresql
from lockr_local.server.security import PasswordCost, check_password, dummy_password_hash, hash_password
from lockr_local.server.service import AccountInfo, FileInfo, NewFile, Principal, Service


@dataclass(frozen=True)
class UploadAdmission:
    """Who uploads and the region the file lands in; a deferred upload (admit_upload) knows neither yet:
    `principal` is None, `region` the one asked for, and its token is checked with the record."""

    principal: Principal | None
    region: str | None
    deferred_token: str | None = None


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per key: `rate` requests per second sustained, `burst` at once."""

    _MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, rate: float, burst: int, cost: float = 1.0) -> None:
        """Takes `cost` from the key's bucket or raises RateLimited with the seconds to wait."""
        self.hit_all([(key, rate, burst)], cost)

    def hit_all(self, limits: list[tuple[str, float, int]], cost: float = 1.0) -> None:
        """Takes `cost` from every (key, rate, burst) bucket, or from none: a request refused by one
        bucket must not spend the others (an account limited per address keeps its own allowance)."""
        now = time.monotonic()
        with self._lock:
            buckets = [(self._refilled(key, rate, burst, now), rate) for key, rate, burst in limits]
            waits = [(cost - bucket.tokens) / rate if rate > 0 else 3600
                     for bucket, rate in buckets if bucket.tokens < cost]
            if waits:
                raise RateLimited(max(waits))
            for bucket, _ in buckets:
                bucket.tokens -= cost

    def _refilled(self, key: str, rate: float, burst: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._MAX_KEYS:
                self._prune(now, rate, burst)
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    def _prune(self, now: float, rate: float, burst: int) -> None:
        full_after = burst / rate if rate > 0 else 3600
        stale = [k for k, b in self._buckets.items() if now - b.updated > full_after]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self._MAX_KEYS:
            self._buckets.clear()


class Authenticator:
    """Turns an Authorization header into a Principal; verifies passwords on the `lockr-kdf` threads."""

    _BASIC_CACHE_SECONDS = 60.0

    def __init__(self, settings: Settings, db: Database, service: Service) -> None:
        self.settings = settings
        self.db = db
        self.service = service
        self.limiter = RateLimiter()
        # Password-login buckets in the database when other nodes may share it; the other limits stay per node.
        self.shared_limits = is_postgresql(settings.database_url)
        self._kdf = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lockr-kdf")
        self.password_cost = PasswordCost.of(settings)
        # Verified Basic credentials, keyed by a salted digest so the cache never holds a password.
        self._basic_cache: dict[str, tuple[float, int, str]] = {}
        self._cache_salt = secrets.token_bytes(16)

    async def principal(self, authorization: str | None, client_address: str) -> Principal:
        """Who sent the request; raises Unauthorized for credentials that are present but wrong, or
        RateLimited once the address has spent its guest allowance (see refuse_credentials)."""
        if not authorization:
            return Principal.guest()
        try:
            return await self._principal(authorization, client_address)
        except Unauthorized as exc:
            self.refuse_credentials(exc, client_address)
            raise

    def refuse_credentials(self, exc: Unauthorized, client_address: str) -> None:
        """A request with wrong credentials counts as a guest request of its address: a client guessing
        tokens (or replaying a revoked one) meets 429 at the guest allowance, not an endless run of 401s.
        Raises RateLimited instead of `exc` once that allowance is spent."""
        try:
            self.limiter.hit("guest:" + client_address, self.settings.rate_guest, self.settings.rate_guest_burst)
        except RateLimited as limited:
            raise limited from exc

    async def _principal(self, authorization: str, client_address: str) -> Principal:
        token = bearer_token(authorization)
        if token is not None:
            return await self.db.run(self.service.authenticate_token, token)
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic" and value:
            identifier, password = _decode_basic(value)
            account = await self.verify_credentials(identifier, password, client_address)
            return Principal(account.id, account.username)
        raise Unauthorized("Unsupported Authorization header; use 'Bearer TOKEN' or Basic auth.")

    async def verify_credentials(self, identifier: str, password: str, client_address: str,
                                 device_accounts: frozenset[int] = frozenset()) -> AccountInfo:
        """The account for a username-or-email and password; 401 (after the same work) when wrong.

        `device_accounts` are the accounts this browser has logged in to before (the web pages' signed
        device cookie): like an address that logged in before, they are not held back by the account's
        allowance (see limit_login)."""
        cache_key = hashlib.sha256(self._cache_salt + identifier.encode() + b"\0" + password.encode()).hexdigest()
        found = await self.db.run(self.service.find_login, identifier, client_address)
        cached = self._basic_cache.get(cache_key)
        if found is not None and cached is not None:
            expires, account_id, password_hash = cached
            if expires > time.monotonic() and account_id == found.account.id and password_hash == found.password_hash:
                return found.account
        recognised = found is not None and (found.known_address or found.account.id in device_accounts)
        # Keyed by the account, so that its username and email share one allowance.
        # A name no account has is keyed by its digest: any text fits a bucket key (PostgreSQL's text holds
        # no NUL) and a long one takes no more room.
        account_key = (f"id:{found.account.id}" if found else
                       "name:" + hashlib.sha256(identifier.strip().lower().encode("utf-8", "replace")).hexdigest())
        await self.limit_login(account_key, client_address, recognised)
        stored_hash = found.password_hash if found else dummy_password_hash(self.password_cost)
        loop = asyncio.get_running_loop()
        ok, upgraded = await loop.run_in_executor(self._kdf, check_password, password, stored_hash,
                                                  self.password_cost)
        if not ok or found is None:
            raise Unauthorized("Wrong username, email or password.")
        if upgraded is not None or not found.known_address:
            await self.db.run(self.service.record_login, found.account.id, client_address, found.password_hash,
                              upgraded)
        self._basic_cache[cache_key] = (time.monotonic() + self._BASIC_CACHE_SECONDS, found.account.id,
                                        upgraded or found.password_hash)
        if len(self._basic_cache) > 10_000:
            self._basic_cache.clear()
        return found.account

    async def limit_login(self, account_key: str, client_address: str, recognised: bool) -> None:
        """Password attempts are limited hard: per client address, and per account from every address
        that has not logged in to it before (nor a browser that has, see verify_credentials). So guessing
        is bounded per address and for one account across addresses, and someone guessing cannot keep
        the owner out of a place the owner logged in from before. Each limit kind has its own key prefix.
        Nodes sharing a PostgreSQL database count in the same buckets (cluster.hit_login_buckets): a guess
        spread over every node meets one limit."""
        rate, burst = self.settings.rate_login, self.settings.rate_login_burst
        limits = [("login-address:" + client_address, rate, burst)]
        if not recognised:
            limits.append(("login-account:" + account_key, rate, burst))
        try:
            if self.shared_limits:
                await self.db.run(hit_login_buckets, limits)
            else:
                self.limiter.hit_all(limits)
        except RateLimited as exc:
            raise RateLimited(exc.retry_after, _LOGIN_LIMITED) from None

    def limit_signup(self, client_address: str) -> None:
        """Sign-ups are limited per client address, apart from logins: one client cannot close sign-up
        for the others, nor spend anyone's login allowance."""
        self.limiter.hit("signup-address:" + client_address, self.settings.rate_login, self.settings.rate_login_burst)

    async def admit_upload(self, authorization: str | None, client_address: str, region: str | None,
                           size: int | None, key_hash: str | None, defer: bool = False) -> UploadAdmission:
        """A direct upload's one database trip before its body, whatever its credentials: who (with the
        burst check of principal() and limit_request), then service.admit_upload's refusals and region.

        A Bearer token (the common case) is checked and the upload admitted in the same trip
        (service.authenticate_and_admit): small uploads are mostly such round trips. With `defer` (a body
        small enough to be stored inline) a Bearer token is not checked now: the one trip after the body,
        record_deferred_upload, checks it, admits and records. Reading at most `inline_max` bytes before a
        refusal costs less than a second trip, which is a tenth of a small upload's time."""
        token = bearer_token(authorization)
        if token is None:
            principal = await self.principal(authorization, client_address)
            self.limit_request(principal, client_address)
            return UploadAdmission(principal, await self.db.run(self.service.admit_upload, principal, region,
                                                                size, key_hash))
        if defer:
            return UploadAdmission(None, region, deferred_token=token)
        try:
            principal, upload_region = await self.db.run(self.service.authenticate_and_admit, token, region, size,
                                                         key_hash)
        except Unauthorized as exc:
            self.refuse_credentials(exc, client_address)
            raise
        self.limit_request(principal, client_address)
        return UploadAdmission(principal, upload_region)

    def record_deferred_upload(self, admission: UploadAdmission, client_address: str, new: NewFile,
                               data: bytes | None) -> tuple[Principal, FileInfo]:
        """On the database thread, once a deferred upload's body is in (admit_upload): its token, the burst
        check (before anything is stored), the upload's refusals, then its row and bytes, with the same
        accounting as admit_upload. `new.region` is replaced by the region resolved here."""
        assert admission.deferred_token is not None
        try:
            principal, account = self.service.token_account(admission.deferred_token)
        except Unauthorized as exc:
            self.refuse_credentials(exc, client_address)
            raise
        self.limit_request(principal, client_address)
        region = self.service.admit_upload(principal, admission.region, new.size, new.key_hash, account)
        return principal, self.service.record_file(principal, dataclasses.replace(new, region=region), data=data)

    def limit_request(self, principal: Principal, client_address: str, cost: float = 1.0) -> None:
        """Burst protection: accounts get a larger allowance than guests; cheap requests may cost less.

        An account is limited per account and, with the same allowance, per client address: requests
        of all accounts from one address share that address's account bucket, so an address holding
        many tokens gets one account allowance (plus its guest allowance), not one per token. Guests
        (and wrong credentials, see refuse_credentials) are limited per address.
        """
        if principal.account_id is not None:
            rate, burst = self.settings.rate_account, self.settings.rate_account_burst
            self.limiter.hit_all([(f"account:{principal.account_id}", rate, burst),
                                  ("account-address:" + client_address, rate, burst)], cost)
        else:
            self.limiter.hit("guest:" + client_address, self.settings.rate_guest, self.settings.rate_guest_burst,
                             cost)

    async def hash_password(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._kdf, hash_password, password, self.password_cost)

    def forget_cached_credentials(self) -> None:
        self._basic_cache.clear()

    def close(self) -> None:
        self._kdf.shutdown(wait=False)


_LOGIN_LIMITED = ("Too many password attempts from this address, or for this account from addresses and browsers "
                  "that have not logged in to it before. Retry after the time in Retry-After, log in where you "
                  "have before, or use an API token.")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, and non-ASCII text in the header
        raise Unauthorized("The Basic credentials are not valid base64 of 'user:password'.") from exc
    identifier, sep, password = decoded.partition(":")
    if not sep or not identifier:
        raise Unauthorized("The Basic credentials must be 'username-or-email:password'.")
    return identifier, password
