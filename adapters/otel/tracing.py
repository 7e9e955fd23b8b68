"""OpenTelemetry traces: one trace per job, from the bot's acceptance through the queue (the
context travels with the message as W3C ``traceparent`` headers), generation, upload and
delivery. Spans go to OTLP/HTTP when an endpoint is set; tests read them from memory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter


class OtelTracer:
    """Implements the domain's ``Tracer`` port."""

    def __init__(
        self,
        *,
        service_name: str = "prompt2pic",
        role: str = "all",
        otlp_endpoint: str = "",
        exporter: SpanExporter | None = None,
        set_global: bool = False,
    ) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name, "service.role": role}))
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces"))
            )
        if set_global:
            trace.set_tracer_provider(self.provider)
        self.tracer = self.provider.get_tracer("prompt2pic")

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        carrier: Mapping[str, str] | None = None,
        links: Sequence[Mapping[str, str]] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[None]:
        context = propagate.extract(dict(carrier)) if carrier else None
        span_links = []
        for link in links:
            span_context = trace.get_current_span(propagate.extract(dict(link))).get_span_context()
            if span_context.is_valid:
                span_links.append(trace.Link(span_context))
        with self.tracer.start_as_current_span(
            name, context=context, links=span_links, attributes=dict(attributes or {})
        ):
            yield

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.provider.shutdown()
