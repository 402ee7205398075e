"""The run settings made from the one options schema, and the wait timeout's names."""

from __future__ import annotations

import pytest

from pytest_smtp.smtp.options import ServerOptions, ini_key, run_flag

# pytest-asyncio warns at configure time when this is unset; the tests here count warnings.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

WAIT = """
def test_wait(smtp_server):
    assert smtp_server.mailbox.default_timeout == {expected}
    assert smtp_server.transactions.default_timeout == {expected}
    assert smtp_server.options.timeout == 300.0  # the idle timeout is another setting
"""


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (["--smtp-wait-timeout=3"], "", 3.0),
        ([], "smtp_wait_timeout = 4", 4.0),
        (["--smtp-wait-timeout=3"], "smtp_wait_timeout = 4", 3.0),
        ([], "", 5.0),
    ],
)
def test_wait_timeout_flag_and_ini(
    pytester: pytest.Pytester, args: list[str], ini: str, expected: float
) -> None:
    pytester.makeini(f"{INI}{ini}\n")
    pytester.makepyfile(WAIT.format(expected=expected))
    result = pytester.runpytest_subprocess(
        "-q", "-W", "error::pytest.PytestDeprecationWarning", *args
    )
    result.assert_outcomes(passed=1)
    assert "deprecated" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "source"),
    [
        (["--smtp-timeout=7"], "", "--smtp-timeout"),
        ([], "smtp_timeout = 7", "ini smtp_timeout"),
    ],
)
def test_old_timeout_name_still_works_and_warns(
    pytester: pytest.Pytester, args: list[str], ini: str, source: str
) -> None:
    pytester.makeini(f"{INI}{ini}\n")
    pytester.makepyfile(WAIT.format(expected=7.0))
    result = pytester.runpytest_subprocess("-q", *args)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [f"*PytestDeprecationWarning: {source} is deprecated: use --smtp-wait-timeout*"]
    )


def test_old_timeout_name_is_an_error_under_strict_warnings(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(WAIT.format(expected=7.0))
    result = pytester.runpytest_subprocess(
        "-W", "error::pytest.PytestDeprecationWarning", "--smtp-timeout=7"
    )
    assert result.ret != pytest.ExitCode.OK
    result.stderr.fnmatch_lines(["*--smtp-timeout is deprecated: use --smtp-wait-timeout*"])


def test_new_wait_timeout_name_wins_over_the_old_one(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "smtp_timeout = 7\n")
    pytester.makepyfile(WAIT.format(expected=2.0))
    result = pytester.runpytest_subprocess("-q", "--smtp-wait-timeout=2")
    result.assert_outcomes(passed=1)


def test_bad_wait_timeout_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--smtp-wait-timeout=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--smtp-wait-timeout*wait_timeout must be more than 0 seconds*"])


def test_help_lists_every_setting_of_the_schema(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    text = result.stdout.str()
    for spec in ServerOptions.schema():
        if spec.setting:
            assert run_flag(spec.name) in text and ini_key(spec.name) in text
    for flag in ("--smtp-wait-timeout", "--smtp-timeout", "--smtp-transcript", "--smtp-seed"):
        assert flag in text
    assert "deprecated alias of --smtp-wait-timeout" in " ".join(text.split())


def test_marker_help_names_every_server_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    [line] = [line for line in result.stdout.lines if line.startswith("@pytest.mark.smtp(")]
    for name in ServerOptions.names():
        assert name in line
