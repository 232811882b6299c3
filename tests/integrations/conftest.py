import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster with 2 CPUs for the whole session (starting one costs 10 to 30 s here)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'taskforge[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
