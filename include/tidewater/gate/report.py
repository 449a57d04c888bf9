"""Summarises validation results (GX's JSON form) into what failed and where its data docs page is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class GateFailed(RuntimeError):
    """Expectations failed: nothing was published. The message names them and the data docs page."""


@dataclass(frozen=True)
class FailedExpectation:
    suite: str
    type: str
    kwargs: dict[str, Any]
    observed: str

    def describe(self) -> str:
        columns = ("column", "column_A", "column_B")
        subject = ", ".join(str(self.kwargs[name]) for name in columns if name in self.kwargs)
        return f"{self.suite}: {self.type}({subject}) — {self.observed}"


@dataclass(frozen=True)
class GateReport:
    publication_id: str
    failures: tuple[FailedExpectation, ...]
    evaluated: int
    docs_pages: tuple[str, ...]  # the failed suites' validation pages (all pages when nothing failed)

    @property
    def success(self) -> bool:
        return not self.failures

    def failure_message(self) -> str:
        lines = [f"gate failed for publication {self.publication_id}: {len(self.failures)} of {self.evaluated} "
                 "expectations failed; nothing was published, the current marts are unchanged."]
        lines += [f"  - {failure.describe()}" for failure in self.failures]
        lines += ["Data docs: " + page for page in self.docs_pages]
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so samples read as `[1000000001, None]`, not `[np.int32(…), None]`."""
    if isinstance(value, tuple | list):
        return type(value)(_plain(item) for item in value)
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def _raised(exception: dict[str, Any] | None) -> str | None:
    """The error of an expectation that could not be computed: GX reports it at the top, or per metric."""
    if not exception:
        return None
    if exception.get("raised_exception"):
        return str(exception.get("exception_message"))
    per_metric = [info for info in exception.values() if isinstance(info, dict) and info.get("raised_exception")]
    return str(per_metric[0].get("exception_message")) if per_metric else None


def _observed(result: dict[str, Any], exception: dict[str, Any] | None) -> str:
    if (error := _raised(exception)) is not None:
        return f"error: {error}"
    if "unexpected_count" in result:
        sample = [_plain(value) for value in result.get("partial_unexpected_list") or []]
        shown = f", e.g. {sample[:5]}" if sample else ""
        return f"{result['unexpected_count']} unexpected of {result.get('element_count')}{shown}"
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    return "failed"


def failed_expectations(validation: dict[str, Any]) -> list[FailedExpectation]:
    """The failed expectations of one suite's validation result (``to_json_dict()`` of GX's result)."""
    suite = validation.get("suite_name") or validation.get("meta", {}).get("expectation_suite_name", "?")
    failed = []
    for outcome in validation.get("results", []):
        if outcome.get("success"):
            continue
        config = outcome.get("expectation_config") or {}
        failed.append(FailedExpectation(suite=suite, type=config.get("type", "?"), kwargs=config.get("kwargs") or {},
                                        observed=_observed(outcome.get("result") or {}, outcome.get("exception_info"))))
    return failed


def summarise(publication_id: str, validations: list[dict[str, Any]], pages: dict[str, str]) -> GateReport:
    """One report for a publish: ``pages`` maps a suite name to its data docs page."""
    failures = [failure for validation in validations for failure in failed_expectations(validation)]
    failed_suites = sorted({failure.suite for failure in failures})
    evaluated = sum(len(validation.get("results", [])) for validation in validations)
    docs = [pages[suite] for suite in failed_suites if suite in pages] if failures else sorted(pages.values())
    return GateReport(publication_id=publication_id, failures=tuple(failures), evaluated=evaluated,
                      docs_pages=tuple(docs))
