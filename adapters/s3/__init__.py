"""S3-compatible object storage (AWS S3, MinIO, moto) through aioboto3."""

from adapters.s3.storage import S3Storage

__all__ = ["S3Storage"]
