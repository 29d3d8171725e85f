"""Host side of the guest tier: boot the QEMU guest, run commands and the guest suites in it."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tests.fixtures_guest import SUITE_TIMEOUT, GuestSuite, RunInGuest, guest_test_modules

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def test_guest_runs_a_command_and_reports_exit_code_output_and_files(run_in_guest: RunInGuest) -> None:
    result = run_in_guest(
        "uname -r; echo to-stderr >&2; test -d /src/storage && echo src-ok; "
        "dd if=/dev/urandom of=/results/blob bs=1k count=64 status=none && sha256sum /results/blob; exit 3",
        timeout=300,
        keep_results=True,
    )
    try:
        code, output = result
        assert code == 3, result.describe()
        assert "src-ok" in output and "to-stderr" in output, result.describe()
        assert output.splitlines()[0].endswith("-amd64")
        assert result.results_dir is not None
        assert hashlib.sha256((result.results_dir / "blob").read_bytes()).hexdigest() in output
    finally:
        if result.results_dir is not None:
            shutil.rmtree(result.results_dir.parent, ignore_errors=True)


def test_guest_that_overruns_its_timeout_is_killed(run_in_guest: RunInGuest) -> None:
    result = run_in_guest("sleep 600", timeout=30)
    assert result.exit_code == 124 and "timeout" in result.output, result.describe()


@pytest.mark.timeout(SUITE_TIMEOUT + 600)  # the first one boots the guest and runs every file
@pytest.mark.parametrize("module", guest_test_modules())
def test_guest_suite_file_passed(guest_suite: GuestSuite, module: str) -> None:
    outcome = guest_suite.outcomes.get(module)
    detail = "\n".join(guest_suite.failures.get(module, []))
    assert outcome is not None, f"{module} did not run in the guest\n{guest_suite.result.describe()}"
    assert outcome["failed"] == 0 and outcome["error"] == 0, f"{outcome}\n{detail}\n{guest_suite.result.describe()}"
    assert outcome["skipped"] == 0, f"guest tests were skipped: {detail}"
    assert outcome["passed"] > 0, f"{outcome}\n{guest_suite.result.describe()}"
