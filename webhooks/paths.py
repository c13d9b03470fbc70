"""One admission path per resource, named like MetalLB's, and what each path checks."""

from __future__ import annotations

from dataclasses import dataclass

from metallb_py.config.schemas import GROUP

WEBHOOK_CONFIGURATION = "metallb-webhook-configuration"
SERVICE_NAME = "metallb-webhook-service"
SECRET_NAME = "metallb-webhook-cert"
CONVERT_PATH = "/convert"
CONVERTED_CRDS = ("bgppeers.metallb.io",)


@dataclass(frozen=True)
class Hook:
    kind: str
    plural: str
    version: str
    operations: tuple[str, ...]
    versions: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"/validate-{GROUP.replace('.', '-')}-{self.version}-{self.kind.lower()}"

    @property
    def name(self) -> str:
        return f"{self.kind.lower()}validationwebhook.{GROUP}"


CUD = ("CREATE", "UPDATE", "DELETE")
HOOKS: tuple[Hook, ...] = (
    Hook("IPAddressPool", "ipaddresspools", "v1beta1", CUD),
    Hook("L2Advertisement", "l2advertisements", "v1beta1", ("CREATE", "UPDATE")),
    Hook("BGPAdvertisement", "bgpadvertisements", "v1beta1", ("CREATE", "UPDATE")),
    Hook("BGPPeer", "bgppeers", "v1beta2", CUD, ("v1beta1", "v1beta2")),
    Hook("BFDProfile", "bfdprofiles", "v1beta1", CUD),
    Hook("Community", "communities", "v1beta1", CUD),
    Hook("AddressPool", "addresspools", "v1beta1", CUD, ("v1alpha1", "v1beta1")),
)
BY_PATH = {h.path: h for h in HOOKS}
