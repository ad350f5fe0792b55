"""Why a pipeline update stopped, in one line a person can act on."""

from __future__ import annotations

from meshops.errors import InvalidInput, MeshopsError


class PipelineError(MeshopsError):
    """An update failed while running: a flow's query, a write, a cycle between datasets."""


class PipelineSourceError(InvalidInput):
    """A pipeline source is wrong (file and line, what was found, what was expected);
    nothing ran."""


class ExpectationViolation(PipelineError):
    """An `expect_or_fail` (or `ON VIOLATION FAIL UPDATE`) expectation failed: the update stops.

    The message names the expectation, the dataset, the flow and one failing row (JSON);
    the same facts are attributes for callers.
    """

    def __init__(
        self,
        *,
        expectation: str,
        condition: str,
        dataset: str,
        flow: str,
        sample: str,
    ) -> None:
        self.expectation, self.condition, self.dataset = expectation, condition, dataset
        self.flow, self.sample = flow, sample
        super().__init__(
            f"expectation '{expectation}' ({condition}) failed on dataset '{dataset}' "
            f"(flow '{flow}'), so the update stopped (expect_or_fail) with nothing of the flow "
            f"written; a failing row: {sample}"
        )
