"""The golden-file fixture: a missing file fails (it is never written silently), --update-golden writes."""

pytest_plugins = ["pytester"]


def test_a_missing_golden_fails_and_the_update_flag_writes_it(pytester, monkeypatch):
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", str(repo))
    pytester.makeconftest("from tests.conftest import golden, pytest_addoption  # noqa: F401\n")
    pytester.makepyfile(test_one="""
        from pathlib import Path

        def test_it(golden):
            golden(Path("golden") / "x.prom", "a 1\\n")
    """)
    missing = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*golden file missing*--update-golden*"])
    assert not (pytester.path / "golden" / "x.prom").exists()

    assert pytester.runpytest_subprocess("-p", "no:cacheprovider", "--update-golden").ret == 0
    assert (pytester.path / "golden" / "x.prom").read_text() == "a 1\n"
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
