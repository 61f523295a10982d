import pytest

from deepfit import lab


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Run a lab experiment's reduced version once per test module; returns (result, out)."""
    cache = {}

    def runner(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (lab.run(name, out, quick=True), out)
        return cache[name]

    return runner
