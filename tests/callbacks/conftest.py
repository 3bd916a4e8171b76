from tests.gateway.conftest import emulated_model

__all__ = ["emulated_model"]
