"""xscontainer-ng: see and control the Docker containers inside XenServer / XCP-ng VMs."""
from setuptools import setup, find_packages

setup(
    name="xscontainer-ng",
    version="0.1.0",
    description="Docker container management for XenServer 8 / XCP-ng 8.3 pools",
    packages=find_packages(include=["dom0_plugin*", "guest_agent*", "xsc_contract*", "lab*",
                                             "pack*"]),
    package_data={"lab": ["dom0_site/*.py"]},
    python_requires=">=3.6",
    extras_require={
        # what dom0 needs besides its own XenAPI module (shipped in the pack as cp36 wheels)
        "dom0": ["paramiko", "click", "asyncssh"],
        # the guest agent (Python >= 3.8 in the guest)
        "agent": ["docker"],
        # the lab: a pool on one Linux machine
        "lab": ["XenAPI"],
        # the test and benchmark tools
        "test": ["pytest", "pytest-timeout", "hypothesis", "vermin", "XenAPI", "docker",
                 "paramiko", "click", "asyncssh"],
    },
    entry_points={
        "console_scripts": [
            "xscontainer = dom0_plugin.cli:run",
            "xscontainer-agent = guest_agent.agent:main",
        ],
    },
)
