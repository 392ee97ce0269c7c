import paddle
import pytest
from traffic_tools import tiny_model_config

from oneforall.traffic.model import build_traffic_model


@pytest.fixture
def tiny_model():
    paddle.seed(0)
    return build_traffic_model(tiny_model_config())
