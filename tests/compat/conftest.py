from tests.fleet.conftest import fleet_factory, fleet_image  # noqa: F401
