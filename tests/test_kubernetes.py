"""deploy/kubernetes/: valid against a pinned Kubernetes API (offline, strict), wired to each other, and setting
only real settings, all the required ones among them."""

from __future__ import annotations

import copy
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes_validate.utils import ValidationError  # type: ignore[import-untyped]

from app.__main__ import DRAIN_SECONDS
from app.shops import SHOP_KEYS, Shops, load_configuration
from app.store.connections import close_redis, redis_from_url
from tests.helpers import ROOT, ConfigError, Settings, load_settings, load_yaml, run

# The oldest Kubernetes the manifests promise to work on (preStop `sleep` is GA from 1.34). Strict: an unknown
# field is an error, as `kubectl apply --validate=strict` has it.
KUBERNETES = "1.34.0"
MANIFESTS = ROOT / "deploy" / "kubernetes"
SECRET_TEMPLATE = "secret.example.yaml"
# Read by `python -m app serve` itself (app/__main__.py), not by the settings object.
SERVE_VARIABLES = {"BFF_HOST", "BFF_PORT", "BFF_WORKERS"}
# Values an operator would put in the Secret, for the template's placeholders.
SECRET_VALUES = {
    "SHOPIFY_CLIENT_SECRET": "a1b2c3d4e5f6",
    "BFF_SESSION_SECRET": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
}


def manifest(name: str) -> dict[str, Any]:
    return load_yaml((MANIFESTS / name).read_text())


def resources() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/kubernetes/, by kind (the Kustomization is kustomize's, not the API's)."""
    found = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            document = load_yaml(path.read_text())
            found[document["kind"]] = document
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_manifest_is_valid_for_the_pinned_kubernetes(name: str) -> None:
    kubernetes_validate.validate(manifest(name), KUBERNETES, strict=True)


def misspelled_probe(deployment: dict[str, Any]) -> None:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readynessProbe"] = container.pop("readinessProbe")


def grace_as_text(deployment: dict[str, Any]) -> None:
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "30s"


def no_selector(deployment: dict[str, Any]) -> None:
    del deployment["spec"]["selector"]


@pytest.mark.parametrize("break_it", [misspelled_probe, grace_as_text, no_selector])
def test_validation_refuses_a_broken_deployment(break_it: Any) -> None:
    broken = copy.deepcopy(manifest("deployment.yaml"))
    break_it(broken)
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_kustomization_applies_everything_but_the_secret_template() -> None:
    listed = set(manifest("kustomization.yaml")["resources"])
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE}
    assert listed == on_disk


def test_objects_point_at_each_other() -> None:
    found = resources()
    deployment, service = found["Deployment"], found["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    # The PDB lets one pod go at a time, so there must be others to serve meanwhile.
    assert found["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == 8000  # the image's BFF_PORT
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    sources = {(kind, ref["name"]) for source in container["envFrom"] for kind, ref in source.items()}
    assert sources == {
        ("configMapRef", found["ConfigMap"]["metadata"]["name"]),
        ("secretRef", found["Secret"]["metadata"]["name"]),
    }


def test_pods_are_probed_unprivileged_and_drain_before_they_are_killed() -> None:
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    # The endpoints are gone before SIGTERM, and in-flight requests finish before SIGKILL.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 1
    assert pod["terminationGracePeriodSeconds"] > pause + DRAIN_SECONDS
    spread = {c["topologyKey"]: c["whenUnsatisfiable"] for c in pod["topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"] == "DoNotSchedule"


def environment(*, secret_values: dict[str, str]) -> dict[str, str]:
    found = resources()
    return {**found["ConfigMap"]["data"], **found["Secret"]["stringData"], **secret_values}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a pod would build from `env` alone."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT / "tests")  # no `.env` here
    return load_settings()


def test_manifests_set_only_real_settings_and_every_required_one() -> None:
    names = set(environment(secret_values={}))
    settings = {name.upper() for name in Settings.model_fields}
    assert names - settings - SERVE_VARIABLES == set(), "not a setting of app/config.py"
    required = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}
    assert required - names == set(), "required settings missing from the ConfigMap and the Secret"


@pytest.mark.parametrize("placeholder", sorted(SECRET_VALUES))
def test_each_placeholder_of_the_secret_template_refuses_to_start(
    placeholder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    others = {name: value for name, value in SECRET_VALUES.items() if name != placeholder}
    with pytest.raises(ConfigError, match=placeholder):
        settings_from(environment(secret_values=others), monkeypatch)


async def test_filled_in_the_manifests_make_settings_the_app_accepts_with_a_sentinel_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from(environment(secret_values=SECRET_VALUES), monkeypatch)
    assert settings.bff_dev_mode is False
    assert settings.public_url == "https://account.example.com"
    assert settings.metrics_address == ("0.0.0.0", 9464)  # noqa: S104 - scraped on the pod's IP
    assert [str(network) for network in settings.trusted_proxies] == ["10.244.0.0/16"]
    # The Sentinel URL is one the store reads: three sentinels, the primary's name and database.
    client = redis_from_url(settings.redis_url)
    try:
        pool: Any = client.connection_pool  # redis-py's SentinelConnectionPool
        assert pool.service_name == "mymaster"
        assert len(pool.sentinel_manager.sentinels) == 3
    finally:
        await close_redis(client)


# --- deploy/kubernetes/shops/: the Component for several shops ------------------------------------------------

COMPONENT = MANIFESTS / "shops"
SHOPS_EXAMPLE = ROOT / "deploy" / "shops.example.toml"
CHECKOUT_IN_EXAMPLE = "../customer-account-bff/"  # where overlay.example.yaml assumes the checkout is
# Values for the shops Secret template's placeholders (the ones it has beyond the REDIS_URL of the base's).
SHOPS_SECRET_VALUES = {
    "BFF_SESSION_SECRET": SECRET_VALUES["BFF_SESSION_SECRET"],
    "SNOWBOARDS_CLIENT_SECRET": "snowboards-9f8e7d6c5b4a",
    "SNOWBOARDS_STOREFRONT_TOKEN": "shpat_snowboards_0a1b2c3d",
    "SNOWBOARDS_WEBHOOK_SECRET": "whsec-snowboards-5e6f7a8b",
    "SURFBOARDS_CLIENT_SECRET": "surfboards-1a2b3c4d5e6f",
}


@dataclass(frozen=True)
class Rendered:
    """What `kubectl apply -k` would send for an operator's overlay made from overlay.example.yaml."""

    objects: list[dict[str, Any]]
    shops_file: Path  # the overlay's shops.toml (deploy/shops.example.toml), what the pods find at BFF_SHOPS_FILE

    def one(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The example overlay, written as the operator would beside a copy of the example shops file, built by
    kustomize (kubectl's own, offline)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; deploy/kubernetes/shops/ not built")
    overlay = tmp_path_factory.mktemp("overlay")
    text = (COMPONENT / "overlay.example.yaml").read_text()
    assert text.count(CHECKOUT_IN_EXAMPLE) == 2, "overlay.example.yaml names the base and the component"
    checkout = os.path.relpath(ROOT, overlay)  # kustomize takes relative paths only
    (overlay / "kustomization.yaml").write_text(text.replace(CHECKOUT_IN_EXAMPLE, f"{checkout}/"))
    shops_file = overlay / "shops.toml"
    shutil.copyfile(SHOPS_EXAMPLE, shops_file)
    built = run([kubectl, "kustomize", str(overlay)], cwd=overlay)
    assert built.returncode == 0, built.stderr
    return Rendered([o for o in yaml.safe_load_all(built.stdout) if o], shops_file)


def shops_secret_template() -> dict[str, Any]:
    return load_yaml((COMPONENT / "secret.example.yaml").read_text())


def shops_environment(rendered: Rendered, *, secret_values: dict[str, str]) -> dict[str, str]:
    """A pod's environment: the ConfigMap and the Secret (envFrom), BFF_SHOPS_FILE read at the mounted file."""
    config = rendered.one("ConfigMap", "customer-account-bff")["data"]
    env = {**config, **shops_secret_template()["stringData"], **secret_values}
    return {**env, "BFF_SHOPS_FILE": str(rendered.shops_file)}


def configuration_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings | Shops:
    """What a pod's `serve` would build from `env` alone (app.shops.load_configuration)."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT / "tests")  # no `.env` here
    return load_configuration()


def test_shops_component_builds_objects_valid_for_the_pinned_kubernetes(rendered: Rendered) -> None:
    kinds = sorted(o["kind"] for o in rendered.objects)
    assert kinds == sorted(["ConfigMap", "ConfigMap", *(k for k in resources() if k not in {"ConfigMap", "Secret"})])
    for document in [*rendered.objects, shops_secret_template()]:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_shops_component_mounts_the_shops_file_where_bff_shops_file_points(rendered: Rendered) -> None:
    config = rendered.one("ConfigMap", "customer-account-bff")["data"]
    pod = rendered.one("Deployment", "customer-account-bff")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    shops = rendered.one("ConfigMap", volume["configMap"]["name"])
    # Named with a hash of the file, so a changed file is a new ConfigMap and a rolling restart.
    assert shops["metadata"]["name"].startswith("customer-account-bff-shops-")
    assert mount["readOnly"] is True
    path = Path(config["BFF_SHOPS_FILE"])
    assert path.parent == Path(mount["mountPath"])
    assert shops["data"][path.name] == SHOPS_EXAMPLE.read_text()


def test_shops_component_sets_only_real_settings_and_no_per_shop_one(rendered: Rendered) -> None:
    names = set(shops_environment(rendered, secret_values={}))
    references = set(re.findall(r'"env:([A-Z0-9_]+)"', SHOPS_EXAMPLE.read_text()))
    settings = {name.upper() for name in Settings.model_fields}
    assert names - settings - SERVE_VARIABLES - references == set(), "not a setting of app/config.py"
    assert references <= names, "every env: reference of the shops file is in the Secret"
    per_shop = {field.upper() for field in SHOP_KEYS.values()}
    assert names & per_shop == set(), "the BFF refuses to start with these beside a shops file"


async def test_filled_in_the_shops_component_makes_a_configuration_the_app_accepts(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = configuration_from(shops_environment(rendered, secret_values=SHOPS_SECRET_VALUES), monkeypatch)
    assert isinstance(configuration, Shops)
    assert configuration.ids == ("snowboards", "surfboards")
    snowboards = configuration.by_id("snowboards")
    assert snowboards.shopify_client_secret.get_secret_value() == SHOPS_SECRET_VALUES["SNOWBOARDS_CLIENT_SECRET"]
    assert [str(network) for network in snowboards.trusted_proxies] == ["10.244.0.0/16"]
    client = redis_from_url(snowboards.redis_url)  # the template's Sentinel URL, shared by every shop
    try:
        assert client.connection_pool.service_name == "mymaster"  # type: ignore[attr-defined]
    finally:
        await close_redis(client)


@pytest.mark.parametrize(
    ("placeholder", "named"),
    [
        ("BFF_SESSION_SECRET", "BFF_SESSION_SECRET"),
        ("SNOWBOARDS_CLIENT_SECRET", 'shop "snowboards": client_secret'),
        ("SURFBOARDS_CLIENT_SECRET", 'shop "surfboards": client_secret'),
    ],
)
def test_each_refused_placeholder_of_the_shops_secret_template_stops_startup_naming_it(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch, placeholder: str, named: str
) -> None:
    others = {name: value for name, value in SHOPS_SECRET_VALUES.items() if name != placeholder}
    with pytest.raises(ConfigError, match=named):
        configuration_from(shops_environment(rendered, secret_values=others), monkeypatch)
