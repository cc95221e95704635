"""Maps the top-level role folders onto the `kubesigma` import package.

pyproject.toml holds the metadata; only the package layout needs code, because each role folder
(pipeline/, detections/, connectors/) installs as `kubesigma.<role>` with all its subpackages.
Dataflow's `--setup_file` uses this file to ship kubesigma to workers.
"""

from setuptools import find_namespace_packages, setup

ROLES = ("pipeline", "detections", "connectors")

# `kubesigma` itself stays an implicit namespace: there is no folder for it, only its roles.
packages: list[str] = []
package_dir: dict[str, str] = {}
for role in ROLES:
    for sub in [role, *(f"{role}.{p}" for p in find_namespace_packages(role, exclude=["*__pycache__*"]))]:
        packages.append(f"kubesigma.{sub}")
        package_dir[f"kubesigma.{sub}"] = sub.replace(".", "/")
packages.append("sigma.pipelines.kubesigma")
package_dir["sigma.pipelines.kubesigma"] = "sigma/pipelines/kubesigma"

# Rules, indicator lists, rule tests and Kibana objects travel with the code (workers need the rules).
DATA = ["*.yml", "*.yaml", "*.json", "*.jsonl", "*.txt", "*.ndjson"]

setup(packages=packages, package_dir=package_dir, package_data={"": DATA})
