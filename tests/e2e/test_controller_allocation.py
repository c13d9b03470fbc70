"""`metallb-py controller` against `metallb-py apiserver`, through the real kubernetes_asyncio
client over HTTP: Services get IPs, status/annotation/events/logs/metrics look like MetalLB's,
and configuration changes never renumber a service behind the user's back."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_py.kube.rest import IPADDRESSPOOLS, SERVICES, Rest
from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.lab.controller_lab import (
    NS,
    Controller,
    client,
    create_pool,
    create_service,
    events_for,
    ingress_ips,
    install_crds,
    service_ips,
    start_controller,
    wait_for,
)

apiserver = apiserver_fixture()


@pytest.fixture
def controller(apiserver: ApiServer, tmp_path: Path) -> Iterator[Controller]:
    ctl = start_controller(apiserver, tmp_path / "ctl", "--lease-duration", "2")
    yield ctl
    ctl.stop()


async def _ips(rest: Rest, name: str, ns: str = "default") -> list[str]:
    return ingress_ips(await rest.get(SERVICES.path(ns, name)))


async def test_services_get_ips_like_metallb(apiserver: ApiServer, controller: Controller) -> None:
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "pool-a", ["192.0.2.0/29"])
        await create_pool(rest, "pool-b", ["198.51.100.10-198.51.100.20"], autoAssign=False)
        await create_service(rest, "web")
        await create_service(
            rest, "pinned", annotations={"metallb.io/address-pool": "pool-b"}, port=81
        )
        await create_service(rest, "asked", loadBalancerIP="198.51.100.15", port=82)
        await create_service(rest, "other", loadBalancerClass="example.com/other", port=83)

        async def all_assigned() -> dict[str, list[str]]:
            got = await service_ips(rest)
            return got if all(got[n] for n in ("web", "pinned", "asked")) else {}

        got = await wait_for(all_assigned, 30, "three services to get IPs")
        assert got["web"] == ["192.0.2.0"]
        assert got["pinned"] == ["198.51.100.10"]
        assert got["asked"] == ["198.51.100.15"]
        assert got["other"] == []  # another controller's class: left alone

        web = await rest.get(SERVICES.path("default", "web"))
        assert web["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "pool-a"
        await wait_for(
            lambda: _has_event(rest, "web", "IPAllocated", 'Assigned IP ["192.0.2.0"]'),
            15,
            "the IPAllocated event",
        )
        line = next(e for e in controller.events("ipAllocated") if e["service"] == "default/web")
        assert line["ip"] == ["192.0.2.0"] and line["msg"] == "IP address assigned by controller"

        async def pool_status() -> dict:
            pool = await rest.get(IPADDRESSPOOLS.path(NS, "pool-a"))
            status = pool.get("status") or {}
            return status if status.get("assignedIPv4") == 1 else {}

        status = await wait_for(pool_status, 15, "IPAddressPool status counters")
        assert status["availableIPv4"] == 7
        metrics = controller.metrics()
        assert 'metallb_allocator_addresses_in_use_total{pool="pool-a"} 1.0' in metrics
        assert 'metallb_allocator_services_allocated_total{pool="pool-b"} 2.0' in metrics
        assert "metallb_k8s_client_config_loaded_bool 1.0" in metrics

        # Deleting a service frees its IP for the next one; a non-LoadBalancer loses its IP.
        await rest.delete(SERVICES.path("default", "web"))
        await create_service(rest, "next", port=84)
        await wait_for(lambda: _eq(_ips(rest, "next"), ["192.0.2.0"]), 20, "IP reuse")
        await rest.patch(SERVICES.path("default", "pinned"), {"spec": {"type": "ClusterIP"}})
        await wait_for(lambda: _eq(_ips(rest, "pinned"), []), 20, "status cleared")

        # No free address: AllocationFailed, and the service gets one once an IP is freed.
        for i in range(8):
            await create_service(rest, f"fill{i}", port=90 + i)

        await wait_for(
            lambda: _has_event(rest, "fill7", "AllocationFailed"), 20, "AllocationFailed"
        )
        await rest.delete(SERVICES.path("default", "fill0"))
        await wait_for(lambda: _truthy(_ips(rest, "fill7")), 20, "the pending service's IP")


async def _has_event(
    rest: Rest, name: str, reason: str, message: str | None = None, ns: str = "default"
) -> bool:
    for e in await events_for(rest, name, ns):
        if e["reason"] == reason and (message is None or e["message"] == message):
            return True
    return False


async def _eq(coro: Awaitable[Any], want: Any) -> bool:
    return (await coro) == want


async def _truthy(coro: Awaitable[Any]) -> bool:
    return bool(await coro)


async def test_config_change_orphans_instead_of_renumbering(
    apiserver: ApiServer, controller: Controller
) -> None:
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "old", ["192.0.2.0/30"])
        await create_pool(rest, "spare", ["198.51.100.0/30"])
        await create_service(rest, "keep", annotations={"metallb.io/address-pool": "spare"})
        await create_service(rest, "lost", port=81)
        await wait_for(lambda: _eq(_ips(rest, "lost"), ["192.0.2.0"]), 30, "first allocation")
        await wait_for(lambda: _truthy(_ips(rest, "keep")), 30, "second allocation")
        keep_before = await _ips(rest, "keep")

        # A mistaken edit: the pool "old" is deleted. MetalLB would renumber "lost".
        await rest.delete(IPADDRESSPOOLS.path(NS, "old"))

        async def flagged() -> dict:
            svc = await rest.get(SERVICES.path("default", "lost"))
            conds = (svc.get("status") or {}).get("conditions") or []
            return svc if any(c["type"] == "metallb-py.io/AddressOrphaned" for c in conds) else {}

        svc = await wait_for(flagged, 20, "the orphan condition")
        assert ingress_ips(svc) == ["192.0.2.0"]
        assert await _ips(rest, "keep") == keep_before
        await wait_for(lambda: _has_event(rest, "lost", "AddressOrphaned"), 15, "orphan event")
        assert "metallb_allocator_orphaned_addresses 1.0" in controller.metrics()

        # The administrator asks for reallocation: the service moves to an allowed pool.
        await rest.patch(
            SERVICES.path("default", "lost"),
            {"metadata": {"annotations": {"metallb-py.io/reallocate": "true"}}},
        )
        await wait_for(
            lambda: _eq(_ips(rest, "lost"), ["198.51.100.1"]), 20, "reallocation on request"
        )
        await wait_for(lambda: _has_event(rest, "lost", "ClearAssignment"), 15, "clear event")


async def test_invalid_config_keeps_last_good(apiserver: ApiServer, controller: Controller) -> None:
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "good", ["192.0.2.0/30"])
        await create_service(rest, "a")
        await wait_for(lambda: _eq(_ips(rest, "a"), ["192.0.2.0"]), 30, "allocation")
        # Replace the only pool with one that overlaps nothing but cannot parse at run time.
        pool = await rest.get(IPADDRESSPOOLS.path(NS, "good"))
        pool["spec"]["addresses"] = ["192.0.2.0/30", "192.0.2.2-192.0.2.1"]
        # No webhook runs here, so the API server stores it; the controller's parser rejects it.
        await rest.replace(IPADDRESSPOOLS.path(NS, "good"), pool)
        await wait_for(lambda: _stale(controller), 20, "metallb_k8s_client_config_stale_bool 1")
        await create_service(rest, "b", port=81)
        await wait_for(lambda: _eq(_ips(rest, "b"), ["192.0.2.1"]), 20, "allocation on last good")

        async def state_invalid() -> bool:
            obj = await rest.get(
                f"/apis/metallb.io/v1beta1/namespaces/{NS}/configurationstates/controller"
            )
            status = obj.get("status") or {}
            return status.get("result") == "Invalid" and "good" in status.get("errorSummary", "")

        await wait_for(state_invalid, 20, "ConfigurationState controller to say Invalid")


async def test_conflicting_pool_is_ignored_with_an_event_naming_the_rule(
    apiserver: ApiServer, controller: Controller
) -> None:
    """Webhooks cannot serialise concurrent creates: two overlapping pools can both be stored.
    The older one wins, the other is ignored, and `kubectl describe` on it says why."""
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "first", ["192.0.2.0/30"])
        await create_service(rest, "a")
        await wait_for(lambda: _eq(_ips(rest, "a"), ["192.0.2.0"]), 30, "allocation")
        await create_pool(rest, "second", ["192.0.2.2/31", "198.51.100.0/30"])

        async def loser_event() -> bool:
            for e in await events_for(rest, "second", NS):
                if e["reason"] == "ConfigurationProblem" and "pool-overlap" in e["message"]:
                    return e["type"] == "Warning" and e["involvedObject"]["kind"] == "IPAddressPool"
            return False

        await wait_for(loser_event, 20, "a Warning event on the ignored pool")
        # The rest of the configuration still applies: the winner keeps allocating.
        await create_service(rest, "b", port=81)
        await wait_for(lambda: _eq(_ips(rest, "b"), ["192.0.2.1"]), 20, "allocation from winner")
        assert not await events_for(rest, "first", NS)


async def test_reallocate_mode_behaves_like_metallb(apiserver: ApiServer, tmp_path: Path) -> None:
    ctl = start_controller(
        apiserver, tmp_path / "ctl", "--lease-duration", "2", "--on-config-change", "reallocate"
    )
    try:
        async with client(apiserver) as rest:
            await install_crds(rest)
            await create_pool(rest, "old", ["192.0.2.0/30"])
            await create_pool(rest, "new", ["198.51.100.0/30"], autoAssign=False)
            await create_service(rest, "web")
            await wait_for(lambda: _eq(_ips(rest, "web"), ["192.0.2.0"]), 30, "allocation")
            pool = await rest.get(IPADDRESSPOOLS.path(NS, "new"))
            pool["spec"]["autoAssign"] = True
            await rest.replace(IPADDRESSPOOLS.path(NS, "new"), pool)
            await rest.delete(IPADDRESSPOOLS.path(NS, "old"))
            await wait_for(lambda: _eq(_ips(rest, "web"), ["198.51.100.0"]), 30, "reallocation")
            await wait_for(lambda: _has_event(rest, "web", "ClearAssignment"), 15, "clear event")
    finally:
        ctl.stop()


async def _stale(controller: Controller) -> bool:
    return "metallb_k8s_client_config_stale_bool 1.0" in controller.metrics()


dual_apiserver = apiserver_fixture(
    args=["--service-cidr", "10.96.0.0/16", "--service-cidr", "fd00:10:96::/112"]
)


async def test_dual_stack_and_sharing(dual_apiserver: ApiServer, tmp_path: Path) -> None:
    ctl = start_controller(dual_apiserver, tmp_path / "ctl", "--lease-duration", "2")
    try:
        async with client(dual_apiserver) as rest:
            await install_crds(rest)
            await create_pool(rest, "v4", ["192.0.2.0/29"])
            await create_pool(rest, "dual", ["198.51.100.0/29", "2001:db8:1::/125"])
            await create_service(
                rest, "both", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]
            )
            await create_service(rest, "six", ipFamilies=["IPv6"], port=81)
            shared = {"metallb.io/allow-shared-ip": "dns"}
            await create_service(rest, "dns-a", annotations=shared, port=53)
            await create_service(rest, "dns-b", annotations=shared, port=5353)

            async def done() -> dict[str, list[str]]:
                got = await service_ips(rest)
                names = ("both", "six", "dns-a", "dns-b")
                return got if all(got.get(n) for n in names) else {}

            got = await wait_for(done, 30, "dual-stack and shared services")
            assert got["both"] == ["198.51.100.0", "2001:db8:1::"]
            assert got["six"] == ["2001:db8:1::1"]
            # Pools by name: "dual" before "v4"; the shared pair sits on one IP.
            assert got["dns-a"] == got["dns-b"] == ["198.51.100.1"]
    finally:
        ctl.stop()


async def test_a_pool_and_a_service_applied_together_log_no_failure_first(
    apiserver: ApiServer, controller: Controller
) -> None:
    """`kubectl apply -f` of a file holding a new pool and a service: the pool may reach the
    controller a moment after the service, on its own watch. The service gets its IP with no
    AllocationFailed event first; a failure that lasts is still reported."""
    async with client(apiserver) as rest:
        await install_crds(rest)
        # A configuration in force whose only pool serves another namespace.
        only_other = {"namespaces": ["other"]}
        await create_pool(rest, "elsewhere", ["198.51.100.0/30"], serviceAllocation=only_other)
        loaded = "metallb_k8s_client_config_loaded_bool 1.0"
        await wait_for(lambda: _metric(controller, loaded), 20, "the first configuration")
        for i in range(5):  # the race depends on timing: several chances to lose it
            mine = {"namespaces": ["default"]}
            await create_pool(rest, f"mine-{i}", [f"192.0.2.{8 * i}/29"], serviceAllocation=mine)
            name = f"web-{i}"
            await create_service(rest, name, port=80 + i)
            await wait_for(functools.partial(_has_ip, rest, name), 30, "the new service's IP")
            assert not await _has_event(rest, name, "AllocationFailed")
        # A failure that lasts is reported: no pool serves this namespace.
        await create_service(rest, "stranded", namespace="kube-public", port=90)
        await wait_for(
            lambda: _has_event(rest, "stranded", "AllocationFailed", ns="kube-public"),
            20,
            "the lasting failure's event",
        )


async def _has_ip(rest: Rest, name: str) -> bool:
    return bool(await _ips(rest, name))


async def _metric(controller: Controller, line: str) -> bool:
    return line in controller.metrics()
