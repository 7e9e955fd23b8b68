"""Settings from environment variables and an optional ``.env`` file.

Every field is documented in the README's settings table (``tests/test_readme.py`` checks that the
table and this class agree). Names are the environment variables, upper-cased.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class QueueBackend(StrEnum):
    MEMORY = "memory"
    KAFKA = "kafka"


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class GeneratorBackend(StrEnum):
    FAKE = "fake"
    TINY = "tiny"
    WUERSTCHEN = "wuerstchen"


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class UserStoreBackend(StrEnum):
    SQLITE = "sqlite"
    MEMORY = "memory"


def _id_set(value: Any) -> Any:
    """``"1, 2,3"`` (an environment variable) or a list: a set of user ids."""
    if isinstance(value, str):
        return {int(part) for part in value.replace(";", ",").split(",") if part.strip()}
    if isinstance(value, int):
        return {value}
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- process
    log_level: str = "INFO"
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    shutdown_grace_s: float = Field(60.0, description="how long in-flight work may finish on stop")
    worker_id: str = Field("", description="worker name; default: host name and pid")

    # --- queue
    queue_backend: QueueBackend = QueueBackend.MEMORY
    memory_queue_file: Path = Field(
        Path("data/queue.json"), description="where the in-memory queue keeps owed work across restarts"
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_requests_topic: str = "p2p.requests"
    kafka_results_topic: str = "p2p.results"
    kafka_dead_letter_topic: str = "p2p.dead-letters"
    kafka_partitions: int = 12
    kafka_replication_factor: int = 1
    kafka_worker_group: str = "p2p-workers"
    kafka_bot_group: str = "p2p-bots"
    kafka_max_poll_interval_ms: int = 900_000
    kafka_session_timeout_ms: int = 30_000
    kafka_max_deliveries: int = 5

    # --- storage
    storage_backend: StorageBackend = StorageBackend.LOCAL
    local_storage_dir: Path = Path("data/images")
    public_base_url: str = Field("", description="public URL of this app's HTTP endpoint")
    link_ttl_s: int = 7 * 24 * 3600
    link_signing_key: SecretStr = SecretStr("")
    s3_endpoint_url: str = ""
    s3_public_endpoint_url: str = ""
    s3_bucket: str = "prompt2pic"
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr = SecretStr("")
    s3_secret_access_key: SecretStr = SecretStr("")
    s3_connect_timeout_s: float = 5.0
    s3_read_timeout_s: float = 30.0
    s3_max_attempts: int = 3
    s3_expire_days: int = Field(0, description="delete images after N days (0: keep)")
    storage_attempts: int = 3

    # --- generator
    generator: GeneratorBackend = GeneratorBackend.FAKE
    wuerstchen_prior: str = "warp-ai/wuerstchen-prior"
    wuerstchen_decoder: str = "warp-ai/wuerstchen"
    tiny_model_dir: Path = Path("data/tiny-wuerstchen")
    generator_device: str = "auto"
    generator_dtype: str = "auto"
    generator_threads: int = 0
    generator_compile: bool = False
    compile_cache_dir: Path = Path("data/compile-cache")
    max_batch: int = 8
    batch_wait_s: float = 0.05
    default_quality: str = "quality"

    # --- quality policy and observability
    quality_policy: str = Field("adaptive", pattern="^(adaptive|fixed)$")
    target_wait_s: float = 60.0
    policy_workers: int = Field(1, ge=1, description="workers sharing the queue, for the wait estimate")
    quality_profiles: dict[str, dict[str, float]] = Field(
        default_factory=dict, description='JSON overrides, e.g. {"fast": {"prior_steps": 6}}'
    )
    seconds_per_image: dict[str, float] = Field(
        default_factory=lambda: {"quality": 0.55, "balanced": 0.32, "fast": 0.04},
        description="starting estimates (H200 figures); measured values replace them",
    )
    log_format: str = Field("text", pattern="^(text|json)$")
    otlp_endpoint: str = ""
    metrics_enabled: bool = True

    # --- limits
    max_prompt_chars: int = 1000
    default_width: int = 1024
    default_height: int = 1024
    min_side: int = 256
    max_side: int = 1536

    # --- telegram
    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"

    @field_validator("telegram_api_url", "public_base_url", "s3_endpoint_url", "s3_public_endpoint_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    # --- telegram front (issue 6)
    telegram_mode: TelegramMode = Field(
        TelegramMode.POLLING, description="polling (default) or webhook (for several bot instances)"
    )
    telegram_webhook_url: str = Field(
        "", description="public https URL Telegram posts updates to (webhook mode), ending in the path"
    )
    telegram_webhook_path: str = Field(
        "/telegram/webhook", description="path of the webhook route on this app's HTTP endpoint"
    )
    telegram_webhook_secret: SecretStr = Field(
        SecretStr(""), description="secret token Telegram sends in X-Telegram-Bot-Api-Secret-Token"
    )
    user_store: UserStoreBackend = Field(
        UserStoreBackend.SQLITE, description="where user settings, jobs and deliveries are kept"
    )
    sqlite_path: Path = Field(Path("data/prompt2pic.sqlite3"), description="SQLite file of the user store")
    max_jobs_in_flight_per_user: int = Field(3, description="queued or running jobs per user (0: no cap)")
    user_rate_per_minute: int = Field(10, description="jobs a user may submit in any 60 s (0: no cap)")
    user_job_expiry_s: float = Field(
        3600.0, description="a job with no result after this long stops holding the user's slot"
    )
    allowed_user_ids: Annotated[set[int], NoDecode] = Field(
        default_factory=set, description="comma-separated user ids allowed to use the bot (empty: all)"
    )
    admin_ids: Annotated[set[int], NoDecode] = Field(
        default_factory=set, description="comma-separated user ids that may use /stats"
    )
    send_rate_global: float = Field(30.0, description="outgoing messages per second, all chats together")
    send_burst_global: int = Field(30, description="messages that may go out at once before the rate applies")
    send_rate_per_chat: float = Field(1.0, description="outgoing messages per second to one chat")
    send_max_attempts: int = Field(5, description="tries of one Bot API call on network and server errors")
    send_backoff_s: float = Field(0.5, description="first wait before retrying a failed call (doubles)")
    status_edit_interval_s: float = Field(
        2.0, description="least time between two edits of one job's live status message"
    )
    variations: int = Field(3, description="pictures made by the Variations button")
    history_size: int = Field(10, description="results listed by /history")

    @field_validator("allowed_user_ids", "admin_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: Any) -> Any:
        return _id_set(value)
