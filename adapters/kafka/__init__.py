"""Apache Kafka adapters (aiokafka)."""

from adapters.kafka.queue import KafkaDelivery, KafkaJobQueue

__all__ = ["KafkaDelivery", "KafkaJobQueue"]
