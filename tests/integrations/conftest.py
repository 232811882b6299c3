import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with 2 CPUs for one test module (starting one costs 10 to 30 s here). Shut down
    when the module ends: later tests fork worker pools, and forking a process that holds Ray's gRPC
    threads is not safe."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'taskforge[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
