"""Installs the `allinone` and `oneforall` packages (VIMER-UFO reproduction in PaddlePaddle).

CPU is the default: `pip install -e .` pulls paddlepaddle and faiss-cpu. For GPUs install the GPU wheels
(`pip install -e ".[gpu]"` after `UFO_DEVICE=gpu`, see the README), which swaps them for paddlepaddle-gpu / faiss-gpu.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_ONLY = {"paddlepaddle", "faiss-cpu"}


def read_requirements():
    reqs = []
    with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                reqs.append(line)
    return reqs


def requirement_name(req):
    return re.split(r"[<>=!~; \[]", req, maxsplit=1)[0].strip().lower()


requirements = read_requirements()
if os.environ.get("UFO_DEVICE", "cpu").lower() == "gpu":
    # the GPU extra brings paddlepaddle-gpu / faiss-gpu; a CPU wheel beside them would shadow the GPU one
    requirements = [r for r in requirements if requirement_name(r) not in CPU_ONLY]

setup(
    name="vimer-ufo-paddle",
    version="0.1.0",
    description="PaddlePaddle reproduction of VIMER-UFO: AllInOne multi-task ViT, OneForAll supernet and GP-NAS",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    # the YAML configs ship inside the package as allinone/configs/ (read from configs/ of the checkout), so
    # `ufo-eval --config allinone/vitlarge_eval` finds them after `pip install .`
    packages=find_packages(include=["allinone", "allinone.*", "oneforall", "oneforall.*"]) + ["allinone.configs"],
    package_dir={"allinone.configs": "configs"},
    package_data={"allinone.configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},
    entry_points={
        "console_scripts": [
            "ufo-eval = allinone.commands.evaluate:main",
            "ufo-train = allinone.commands.train:main",
            "ufo-export = allinone.commands.export:main",
            "ufo-gpnas = oneforall.gpnas.cli:main",
        ],
        # allinone imports these modules to find components it does not define (allinone/plugins.py)
        "allinone.plugins": ["oneforall = oneforall.plugin"],
    },
    install_requires=requirements,
    extras_require={
        "gpu": ["paddlepaddle-gpu==3.3.1", "faiss-gpu"],
        "test": ["pytest", "nbclient", "nbformat", "ipykernel"],
    },
    include_package_data=True,
)
