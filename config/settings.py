"""Settings from environment variables and an optional ``.env`` file.

Every field is documented in the README's settings table (``tests/test_readme.py`` checks that the
table and this class agree). Names are the environment variables, upper-cased.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class QueueBackend(StrEnum):
    MEMORY = "memory"
    KAFKA = "kafka"


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class GeneratorBackend(StrEnum):
    AUTO = "auto"  # wuerstchen when the worker extra and the weights (cached or downloadable) are there, else fake
    FAKE = "fake"
    TINY = "tiny"
    WUERSTCHEN = "wuerstchen"


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class UserStoreBackend(StrEnum):
    SQLITE = "sqlite"
    MEMORY = "memory"
    POSTGRES = "postgres"


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


# Telegram's alphabet for the webhook secret (1-256 characters), with our own floor of 32.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}")


def _strip_secret(value: Any) -> Any:
    """A secret without the whitespace around it: a Kubernetes Secret made from a file written by
    ``echo`` or ``openssl rand -hex 32 > file`` ends in a newline, which the app would otherwise
    send to Telegram as part of the token or the webhook secret (and aiogram refuses such a
    token outright). No real secret starts or ends with whitespace."""
    if isinstance(value, SecretStr):
        return SecretStr(value.get_secret_value().strip())
    if isinstance(value, str):
        return value.strip()
    return value


def _id_set(value: Any) -> Any:
    """``"1, 2,3"`` (an environment variable) or a list: a set of user ids."""
    if isinstance(value, str):
        return {int(part) for part in value.replace(";", ",").split(",") if part.strip()}
    if isinstance(value, int):
        return {value}
    return value


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting never echoes the values (passwords among them).
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # --- process
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR (prompts appear only at DEBUG)")
    log_format: str = Field("text", pattern="^(text|json)$", description="text, or json lines with job ids")
    http_host: str = Field("0.0.0.0", description="address of the HTTP endpoint (/healthz, /readyz, /metrics, /files)")
    http_port: int = Field(8080, description="port of the HTTP endpoint")
    shutdown_grace_s: float = Field(60.0, description="how long in-flight work may finish on SIGTERM")
    worker_id: str = Field("", description="stable worker name (Kafka static membership); default: host name and pid")

    # --- queue
    queue_backend: QueueBackend = Field(QueueBackend.MEMORY, description="memory (one process) or kafka")
    memory_queue_file: Path = Field(
        Path("data/queue.json"), description="where the in-memory queue keeps owed work across restarts"
    )
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers, comma-separated")
    kafka_requests_topic: str = Field("p2p.requests", description="topic of jobs, bot to workers")
    kafka_results_topic: str = Field("p2p.results", description="topic of progress and results, workers to bots")
    kafka_dead_letter_topic: str = Field(
        "p2p.dead-letters", description="topic of messages set aside, with the reason in a header"
    )
    kafka_partitions: int = Field(12, description="partitions of topics the app creates (bounds worker parallelism)")
    kafka_replication_factor: int = Field(1, description="replication of topics the app creates")
    kafka_worker_group: str = Field("p2p-workers", description="consumer group of the workers")
    kafka_bot_group: str = Field("p2p-bots", description="consumer group of the bots (results)")
    kafka_max_poll_interval_ms: int = Field(
        900_000, description="longest time between polls before a worker is dropped: above the longest batch"
    )
    kafka_session_timeout_ms: int = Field(
        10_000, description="how soon a dead process's partitions move to another (brokers allow 6000 and up)"
    )
    kafka_max_deliveries: int = Field(5, description="deliveries of one job before it fails honestly")
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        KafkaSecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (managed Kafka: SASL_SSL)",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        KafkaSaslMechanism.SCRAM_SHA_512, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)"
    )
    kafka_sasl_username: str = Field("", description="SASL user (with SASL_*)")
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), description="SASL password (with SASL_*; or KAFKA_SASL_PASSWORD_FILE)"
    )
    kafka_ssl_ca_file: str = Field(
        "", description="PEM file of the CA that signed the brokers' certificates (empty: the system's)"
    )
    kafka_ssl_cert_file: str = Field("", description="PEM file of the client certificate, for brokers that ask for one")
    kafka_ssl_key_file: str = Field("", description="PEM file of the client certificate's private key")

    # --- storage
    storage_backend: StorageBackend = Field(StorageBackend.LOCAL, description="local (a folder) or s3")
    local_storage_dir: Path = Field(Path("data/images"), description="folder of the local storage")
    public_base_url: str = Field(
        "",
        description="public https URL of this app's HTTP endpoint, for local-storage links (empty, localhost, "
        "an IP or a dotless name: no link buttons, Telegram refuses them; the Original PNG button remains)",
    )
    link_ttl_s: int = Field(
        24 * 3600,
        ge=1,
        le=7 * 24 * 3600,
        description="lifetime of image links, seconds (default a day; S3 allows 7 days at most)",
    )
    link_signing_key: SecretStr = Field(
        SecretStr(""), description="key signing local-storage links (empty: a random key per process)"
    )
    s3_endpoint_url: str = Field("", description="S3 endpoint the workers write to (empty: AWS)")
    s3_public_endpoint_url: str = Field(
        "",
        description="S3 endpoint users' phones reach; links are signed for it (empty: the same); a "
        "link button needs a public host name (docs/deploy.md)",
    )
    s3_bucket: str = Field("prompt2pic", description="bucket of images (created private if missing)")
    s3_region: str = Field("us-east-1", description="S3 region")
    s3_access_key_id: SecretStr = Field(SecretStr(""), description="S3 access key id")
    s3_secret_access_key: SecretStr = Field(SecretStr(""), description="S3 secret key")
    s3_connect_timeout_s: float = Field(5.0, description="S3 connect timeout")
    s3_read_timeout_s: float = Field(30.0, description="S3 read timeout")
    s3_max_attempts: int = Field(3, description="attempts of one S3 call (botocore standard retries)")
    s3_expire_days: int = Field(0, description="delete images after N days by a bucket lifecycle rule (0: keep)")
    storage_attempts: int = Field(3, description="attempts to store an image before the job fails honestly")

    # --- generator
    generator: GeneratorBackend = Field(
        GeneratorBackend.AUTO,
        description="auto (wuerstchen when the worker extra is installed and its weights are cached or the hub "
        "is reachable, else fake), fake (a Pillow placeholder), tiny (random-weight Würstchen) or wuerstchen",
    )
    wuerstchen_prior: str = Field("warp-ai/wuerstchen-prior", description="prior: hub id or local folder")
    wuerstchen_decoder: str = Field("warp-ai/wuerstchen", description="decoder: hub id or local folder")
    wuerstchen_prior_revision: str = Field(
        "main", min_length=1, description="hub revision of the prior: branch, tag or (to pin it) commit hash"
    )
    wuerstchen_decoder_revision: str = Field(
        "main", min_length=1, description="hub revision of the decoder: branch, tag or (to pin it) commit hash"
    )
    tiny_model_dir: Path = Field(Path("data/tiny-wuerstchen"), description="where the tiny model is built once")
    generator_device: str = Field("auto", description="auto (CUDA when present), cuda, cuda:N or cpu")
    generator_dtype: str = Field(
        "auto",
        description="auto (bf16 on GPU and on CPUs with native bf16: AMX or AVX512-BF16; fp32 on other CPUs), "
        "bfloat16, float16 or float32",
    )
    generator_backend: Literal["auto", "torch", "openvino"] = Field(
        "auto",
        description="what runs the model: auto (torch on GPU; on CPU the backend measured faster for the CPU's "
        "bf16 capability, docs/benchmarks.md, torch when the openvino extra is missing), torch or openvino (CPU only)",
    )
    openvino_int8_weights: bool = Field(
        False, description="OpenVINO backend: compress the weights to int8 with NNCF (less memory; see benchmarks)"
    )
    generator_threads: int = Field(0, description="CPU threads for torch (0: physical cores)")
    generator_compile: bool = Field(False, description="torch.compile on GPU, warmed up at start")
    generator_compile_mode: str = Field(
        "reduce-overhead",
        description="torch.compile mode: reduce-overhead (CUDA graphs), default, max-autotune-no-cudagraphs ...",
    )
    generator_channels_last: Literal["auto", "on", "off"] = Field(
        "auto",
        description="channels-last layout for the prior, decoder and VQGAN: auto (prior and decoder on GPU, "
        "VQGAN on CPU), on or off",
    )
    generator_png_threads: int = Field(0, ge=0, description="threads encoding PNGs in parallel (0: cores, at most 16)")
    compile_cache_dir: Path = Field(
        Path("data/compile-cache"),
        description="persistent torch.compile cache; the OpenVINO backend keeps its converted and compiled models "
        "in its openvino/ folder",
    )
    generator_warmup: str = Field(
        "",
        description="batch x width x height combinations compiled at start (torch.compile, OpenVINO), e.g. "
        '"1x1024x1024,8x1024x1024"',
    )
    prompt_translation: Literal["auto", "off"] = Field(
        "auto",
        description="translate prompts into English for the text encoders: auto (MarianMT with wuerstchen, "
        "the tiny model with tiny, none with fake) or off",
    )
    prompt_translation_model: str = Field(
        "Helsinki-NLP/opus-mt-ru-en", description="MarianMT model translating prompts: hub id or local folder"
    )
    prompt_translation_revision: str = Field(
        "main", min_length=1, description="hub revision of the translation model: branch, tag or commit hash"
    )
    prompt_translation_beams: int = Field(1, ge=1, description="beam search width of the translator (1: greedy)")
    prompt_translation_dtype: str = Field(
        "auto",
        description="translator dtype: auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16; "
        "it runs on GENERATOR_DEVICE",
    )
    tiny_translation_model_dir: Path = Field(
        Path("data/tiny-marian"), description="where the tiny translation model is built once (GENERATOR=tiny)"
    )
    max_batch: int = Field(8, ge=1, description="most images per generator call")
    batch_wait_s: float = Field(0.05, description="how long a worker waits to fill a batch")
    default_quality: str = Field("quality", description="profile of the fixed policy for automatic jobs")

    # --- quality policy and observability
    quality_policy: str = Field("adaptive", pattern="^(adaptive|fixed)$", description="adaptive or fixed")
    quality_cap: str = Field(
        "",
        pattern="^(|quality|balanced|fast)$",
        description="best profile this worker makes, e.g. fast on CPUs; slower requests are lowered (empty: none)",
    )
    target_wait_s: float = Field(60.0, description="queue wait the adaptive policy aims to keep under")
    policy_workers: int = Field(1, ge=1, description="workers sharing the queue, for the wait estimate")
    quality_profiles: dict[str, dict[str, float]] = Field(
        default_factory=dict, description='JSON overrides of profiles, e.g. {"fast": {"prior_steps": 6}}'
    )
    seconds_per_image: dict[str, float] = Field(
        default_factory=lambda: {"quality": 0.55, "balanced": 0.32, "fast": 0.04},
        description="starting estimates per profile (quality: an H200's measured figure; balanced, fast: "
        "scaled from it by steps and pixels) when the worker does not calibrate; its calibration, then "
        "measured values replace them",
    )
    calibration: Literal["auto", "off"] = Field(
        "auto",
        description="auto: a Würstchen worker times one image per profile at start (or reads its cache) "
        "and the policy starts from that; off: from SECONDS_PER_IMAGE",
    )
    calibration_budget_s: float = Field(
        120.0, ge=0, description="most seconds the calibration at start spends timing (beyond: extrapolated)"
    )
    calibration_cache: Path = Field(
        Path("data/worker-speed.json"),
        description="cache of calibrations by machine, model, dtype and backend (a restart reads it)",
    )
    otlp_endpoint: str = Field("", description="OTLP/HTTP collector for metrics and traces (empty: off)")
    metrics_enabled: bool = Field(True, description="OpenTelemetry metrics on /metrics")

    # --- limits
    max_prompt_chars: int = Field(1000, description="longest prompt accepted")
    default_width: int = Field(1024, description="image width when the user gives no aspect ratio")
    default_height: int = Field(1024, description="image height when the user gives no aspect ratio")
    min_side: int = Field(256, description="smallest side allowed (multiples of 128)")
    max_side: int = Field(1536, description="largest side allowed (multiples of 128)")

    # --- telegram
    telegram_bot_token: SecretStr = Field(SecretStr(""), description="the bot's token from @BotFather")
    telegram_api_url: str = Field(
        "https://api.telegram.org", description="Bot API server (a self-hosted telegram-bot-api server works)"
    )

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
        SecretStr(""),
        description="secret token Telegram sends in X-Telegram-Bot-Api-Secret-Token: 32-256 characters "
        "of A-Z a-z 0-9 _ - (openssl rand -hex 32)",
    )
    job_id_secret: SecretStr = Field(
        SecretStr(""),
        description="key of the HMAC that makes job ids from chat and message ids, so that nobody can "
        "compute another user's job id (empty: derived from TELEGRAM_BOT_TOKEN, the same on every bot host)",
    )

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        # Telegram accepts 1-256 characters of this alphabet; a short secret could be guessed, and
        # it is all that stands between the internet and the webhook route. The message never
        # holds the value (hide_input_in_errors keeps pydantic from echoing it too).
        secret = value.get_secret_value()
        if secret and not _WEBHOOK_SECRET.fullmatch(secret):
            raise ValueError(
                "TELEGRAM_WEBHOOK_SECRET must be 32 to 256 characters of A-Z, a-z, 0-9, _ and - "
                "(make one with: openssl rand -hex 32)"
            )
        return value

    user_store: UserStoreBackend = Field(
        UserStoreBackend.SQLITE,
        description="where user settings, jobs and deliveries are kept: sqlite (one host), "
        "postgres (shared by bot instances on any hosts) or memory",
    )
    sqlite_path: Path = Field(Path("data/prompt2pic.sqlite3"), description="SQLite file of the user store")
    database_url: SecretStr = Field(
        SecretStr(""),
        description="PostgreSQL DSN of USER_STORE=postgres, postgresql://user@host:5432/db (or DATABASE_URL_FILE)",
    )
    database_password: SecretStr = Field(
        SecretStr(""), description="PostgreSQL password, when not in DATABASE_URL (or DATABASE_PASSWORD_FILE)"
    )
    database_pool_min: int = Field(1, ge=0, description="PostgreSQL connections each bot process keeps open")
    database_pool_max: int = Field(10, ge=1, description="most PostgreSQL connections of one bot process")
    database_connect_timeout_s: float = Field(5.0, gt=0, description="PostgreSQL connect timeout")
    max_jobs_in_flight_per_user: int = Field(3, description="queued or running jobs per user (0: no cap)")
    user_rate_per_minute: int = Field(10, description="jobs a user may submit in any 60 s (0: no cap)")
    user_job_expiry_s: float = Field(
        3600.0, description="a job with no result after this long stops holding the user's slot"
    )
    # --- lanes (docs/lanes.md)
    lanes_relaxed_after: int = Field(
        30, ge=0, description="pictures in LANES_RECENT_WINDOW_S after which a user's jobs go relaxed (0: never)"
    )
    lanes_recent_window_s: float = Field(3600.0, gt=0, description="the sliding window of LANES_RELAXED_AFTER")
    lanes_relaxed_every: int = Field(
        4, ge=2, description="at least 1 in this many jobs taken (and batches made) is relaxed while it has work"
    )
    daily_allowance: int = Field(
        0, ge=0, description="priority pictures per user per day; past it, relaxed, never refused (0: off)"
    )
    daily_allowance_renew_hour: int = Field(
        0, ge=0, le=23, description="the hour (UTC) at which DAILY_ALLOWANCE renews"
    )
    allowed_user_ids: Annotated[set[int], NoDecode] = Field(
        default_factory=set, description="comma-separated user ids allowed to use the bot (empty: all)"
    )
    admin_ids: Annotated[set[int], NoDecode] = Field(
        default_factory=set,
        description="comma-separated user ids that may use /stats, /ban and /unban (and get reports)",
    )
    send_rate_global: float = Field(
        30.0, description="outgoing calls in any one second, all chats together (Telegram: about 30)"
    )
    send_rate_per_chat: float = Field(1.0, description="outgoing messages per second to one chat")
    send_group_interval_s: float = Field(
        3.0, description="least time between two messages to one group chat (Telegram allows 20 a minute)"
    )
    delivery_lease_s: float = Field(
        15.0, description="a result claimed by a bot that died unconfirmed is taken over after this long"
    )
    send_max_attempts: int = Field(5, description="tries of one Bot API call on network and server errors")
    send_backoff_s: float = Field(0.5, description="first wait before retrying a failed call (doubles)")
    status_edit_interval_s: float = Field(
        2.0, description="least time between two edits of one job's live status message"
    )
    queue_refresh_s: float = Field(
        5.0, description="how often the status of jobs still in line is updated with their place and wait"
    )
    split_join_s: float = Field(
        1.5,
        description="parts of a long paste split by the client (4096 characters each) arriving "
        "within this many seconds are joined into one prompt (0: off)",
    )
    variations: int = Field(3, ge=1, le=10, description="pictures made by the Variations button, sent as one album")
    album_wait_s: float = Field(
        30.0, description="how long a finished variation waits for the others, to go out as one album"
    )
    history_size: int = Field(10, description="results listed by /history")

    # --- content safety (issue 18)
    safety_prompt_filter: bool = Field(
        True, description="refuse prompts that match the word lists, at the bot and again on the worker"
    )
    safety_word_lists: str = Field(
        "",
        description="comma-separated word-list files, language from the name (ru.txt); empty: config/wordlists/*.txt",
    )
    safety_image_action: Literal["spoiler", "refuse", "off"] = Field(
        "spoiler", description="a picture the image check flags: spoiler (sent blurred), refuse (not stored) or off"
    )
    safety_image_detector: Literal["auto", "nudenet", "none"] = Field(
        "auto", description="image check on the worker: nudenet, none, or auto (nudenet when installed)"
    )
    safety_image_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="NudeNet score from which a detection flags a picture (0.25 at least)"
    )
    safety_image_categories: str = Field(
        "FEMALE_BREAST_EXPOSED,FEMALE_GENITALIA_EXPOSED,MALE_GENITALIA_EXPOSED,BUTTOCKS_EXPOSED,ANUS_EXPOSED",
        description="comma-separated NudeNet classes that flag a picture",
    )
    safety_image_threads: int = Field(0, ge=0, description="CPU threads of the image check (0: onnxruntime's default)")
    admin_chat_id: int = Field(0, description="chat that gets users' reports of pictures (0: every ADMIN_IDS user)")

    # --- credits bought with Telegram Stars (issue 32; docs/payments.md)
    payments: Literal["off", "stars"] = Field(
        "off", description="stars: sell credits for Telegram Stars (/buy, /refund, /paysupport, /terms); off: none"
    )
    stars_packs: str = Field(
        "10:50,50:200",
        description="packs sold by /buy, comma-separated CREDITS:STARS (10:50 = 10 pictures for 50 Stars)",
    )
    payments_support: str = Field(
        "", description="where /paysupport sends buyers (a @username, an email or a link); empty: the admins here"
    )
    payments_terms_url: str = Field("", description="a page with the full terms of sale, linked from /terms")
    stars_catch_up_s: float = Field(
        300.0,
        ge=0,
        description="how often paid Stars whose message was lost are credited (getStarTransactions; 0: at start only)",
    )

    @field_validator("stars_packs")
    @classmethod
    def _packs(cls, value: str) -> str:
        from domain.credits import parse_packs

        try:
            parse_packs(value)
        except ValueError as exc:
            raise ValueError(f"STARS_PACKS: {exc}") from None
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _strip_secrets(cls, value: Any, info: ValidationInfo) -> Any:
        """One rule for every secret setting (whatever its source: the environment, a ``*_FILE``
        read by the entry point, a Kubernetes Secret, ``.env``): surrounding whitespace goes."""
        field = cls.model_fields.get(info.field_name or "")
        return _strip_secret(value) if field is not None and field.annotation is SecretStr else value

    @field_validator("allowed_user_ids", "admin_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: Any) -> Any:
        return _id_set(value)

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        if self.kafka_security_protocol.value.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol.value} needs KAFKA_SASL_USERNAME "
                "and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        if bool(self.kafka_ssl_cert_file) != bool(self.kafka_ssl_key_file):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")
        if self.user_store == UserStoreBackend.POSTGRES and not self.database_url.get_secret_value():
            raise ValueError("USER_STORE=postgres needs DATABASE_URL (or DATABASE_URL_FILE)")
        return self
