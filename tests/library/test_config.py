"""The settings table: precedence, parsing, and errors that name the fix."""

from __future__ import annotations

import pytest

from cvtrace.config import SPAN_LIMIT_VARIABLES, BatchSettings, resolve
from cvtrace.exceptions import CvtraceConfigError


def test_precedence_argument_then_environment_then_default() -> None:
    env = {"CVTRACE_SCRUB": "false", "CVTRACE_EXCLUDE_URLS": "/ping, /static/"}
    assert resolve({}, {}).scrub is True
    assert resolve({}, env).scrub is False
    assert resolve({"scrub": True}, env).scrub is True
    assert resolve({}, env).exclude_urls == ("/ping", "/static/")
    assert resolve({"exclude_urls": ["/x"]}, env).exclude_urls == ("/x",)
    assert resolve({"exclude_urls": False}, env).exclude_urls == ()


def test_exporters_are_validated_deduplicated_and_none_dropped() -> None:
    settings = resolve({}, {"CVTRACE_EXPORTERS": "OTLP, local,otlp,none"})
    assert settings.exporters == ("otlp", "local")
    assert settings.enabled


def test_exporters_from_the_argument_name_the_argument() -> None:
    with pytest.raises(CvtraceConfigError, match=r"^exporters: unknown exporter 'zipkin'"):
        resolve({"exporters": ["zipkin"]}, {})


def test_otel_traces_exporter_unknown_value() -> None:
    with pytest.raises(
        CvtraceConfigError, match=r"^OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"
    ):
        resolve({}, {"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CVTRACE_SCRUB", "maybe", "CVTRACE_SCRUB: 'maybe' is not a boolean; use true or false"),
        ("OTEL_SDK_DISABLED", "yes please", "OTEL_SDK_DISABLED: 'yes please' is not a boolean"),
        (
            "CVTRACE_SHUTDOWN_TIMEOUT",
            "soon",
            "CVTRACE_SHUTDOWN_TIMEOUT: 'soon' is not a non-negative",
        ),
        (
            "OTEL_SPAN_EVENT_COUNT_LIMIT",
            "-1",
            "OTEL_SPAN_EVENT_COUNT_LIMIT: '-1' is not a whole number >= 0; use for example 128",
        ),
        (
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "0",
            "OTEL_BSP_MAX_QUEUE_SIZE: '0' is not a whole number above zero",
        ),
    ],
)
def test_bad_values_name_setting_value_and_fix(variable: str, value: str, message: str) -> None:
    with pytest.raises(CvtraceConfigError) as error:
        resolve({}, {variable: value})
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("128", True), ("0", True), (" ", True), ("unset", False), ("-1", False), ("1.5", False)],
)
def test_span_limits_are_checked_as_the_sdk_reads_them(
    monkeypatch: pytest.MonkeyPatch, value: str, accepted: bool
) -> None:
    """cvtrace refuses exactly the values that would make the SDK raise later."""
    from opentelemetry.sdk.trace import SpanLimits

    for variable in SPAN_LIMIT_VARIABLES:
        monkeypatch.setenv(variable, value)
        sdk_accepts = True
        try:
            SpanLimits()
        except ValueError:
            sdk_accepts = False
        try:
            resolve({}, {variable: value})
        except CvtraceConfigError:
            assert (sdk_accepts, accepted) == (False, False), variable
        else:
            assert (sdk_accepts, accepted) == (True, True), variable
        monkeypatch.delenv(variable)


@pytest.mark.parametrize(
    ("sampler", "ratio", "accepted"),
    [
        ("parentbased_always_on", "", True),
        ("ALWAYS_OFF", "", True),  # the SDK reads the name in lower case
        ("parentbased_traceidratio", "0.25", True),
        ("traceidratio", "0", True),
        ("bogus", "", False),
        ("xray", "", False),  # in the specification, not in the Python SDK
        ("traceidratio", "2", False),
        ("parentbased_traceidratio", "one in ten", False),
        ("always_on", "not a ratio, and not read", True),
    ],
)
def test_a_sampler_the_sdk_would_replace_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sampler: str,
    ratio: str,
    accepted: bool,
) -> None:
    """The SDK replaces an unknown sampler or a bad ratio by its default with only a
    warning (older releases raise for a ratio out of range, when the provider is made);
    cvtrace refuses exactly those at init(), naming the variable."""
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    env = {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": ratio}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level("WARNING", logger="opentelemetry.sdk.trace.sampling"):
        try:
            _get_from_env_or_default()
        except ValueError:
            sdk_refuses = True
        else:
            sdk_refuses = bool(caplog.records)
    assert sdk_refuses is not accepted  # the SDK's own verdict
    if accepted:
        resolve({}, env)
    else:
        with pytest.raises(CvtraceConfigError, match="OTEL_TRACES_SAMPLER") as refused:
            resolve({}, env)
        assert "use " in str(refused.value)


class TestBatchSettings:
    """The standard OTEL_BSP_* variables, rows of the settings table."""

    def test_spec_defaults(self) -> None:
        assert resolve({}, {}).batch == BatchSettings(5.0, 2048, 512, 30.0)

    def test_milliseconds_become_seconds(self) -> None:
        settings = resolve(
            {}, {"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_EXPORT_TIMEOUT": "1500"}
        ).batch
        assert settings.schedule_delay_s == 0.25
        assert settings.export_timeout_s == 1.5

    def test_a_small_queue_shrinks_the_default_batch(self) -> None:
        batch = resolve({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "100"}).batch
        assert (batch.max_queue_size, batch.max_export_batch_size) == (100, 100)

    def test_a_batch_larger_than_the_queue_is_an_error(self) -> None:
        with pytest.raises(
            CvtraceConfigError, match=r"^OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 600 is larger"
        ):
            resolve({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "500", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "600"})

    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            ("OTEL_BSP_SCHEDULE_DELAY", "soon", "'soon' is not a non-negative number"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "'0' is not a whole number above zero"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "-5", "'-5' is not a non-negative number"),
        ],
    )
    def test_bad_values_name_the_variable(self, variable: str, value: str, message: str) -> None:
        with pytest.raises(CvtraceConfigError, match=f"^{variable}: {message}"):
            resolve({}, {variable: value})
