"""Drive vswitchd with the real Docker SDK for Python (docker-py), as user code would.

Usage: docker_sdk.py SOCKET_PATH
Prints one JSON object with what it saw; exits non-zero on the first thing that differs from
what Docker does.
"""
import json
import sys

import docker
from docker.errors import APIError

MAC = "02:42:0a:21:00:99"


def main(sock):
    c = docker.DockerClient(base_url="unix://" + sock, version="auto", timeout=30)
    seen = {"server_api": c.version()["ApiVersion"]}

    # An IPAM pool with no gateway: docker-py sends "Gateway": null (and "Options": null).
    pool = docker.types.IPAMPool(subnet="10.33.0.0/24")
    ipam = docker.types.IPAMConfig(pool_configs=[pool])
    net = c.networks.create("sdknet", driver="bridge", ipam=ipam)
    net2 = c.networks.create("sdknet2", driver="bridge")
    net.reload()
    seen["ipam"] = net.attrs["IPAM"]
    assert net.attrs["IPAM"]["Config"][0]["Gateway"] == "10.33.0.1", net.attrs["IPAM"]
    assert net.attrs["IPAM"]["Options"] is None, net.attrs["IPAM"]

    ctr = c.containers.create("none", ["sleep", "300"], name="sdk1", network="sdknet")
    net2.connect(ctr, mac_address=MAC, link_local_ips=["169.254.7.7"])
    ctr.reload()
    eps = ctr.attrs["NetworkSettings"]["Networks"]
    seen["mac"] = eps["sdknet2"]["MacAddress"]
    seen["ipam_config"] = eps["sdknet2"]["IPAMConfig"]
    assert seen["mac"] == MAC, eps
    assert seen["ipam_config"] == {"LinkLocalIPs": ["169.254.7.7"]}, eps
    net2.reload()
    members = {v["Name"]: v["MacAddress"] for v in net2.attrs["Containers"].values()}
    assert members == {"sdk1": MAC}, net2.attrs["Containers"]

    # exec: attached (multiplexed stream), demuxed, exit codes, detached.
    ctr.start()
    r = ctr.exec_run(["cat", "/sys/class/net/eth1/address"])
    seen["exec_mac"] = r.output.decode().strip()
    assert r.exit_code == 0 and seen["exec_mac"] == MAC, r
    r = ctr.exec_run(["sh", "-c", "echo out; echo err >&2; exit 5"], demux=True)
    assert r.exit_code == 5, r
    assert r.output == (b"out\n", b"err\n"), r
    api = c.api
    eid = api.exec_create(ctr.id, ["sh", "-c", "exit 9"])["Id"]
    api.exec_start(eid, detach=True)
    for _ in range(200):
        info = api.exec_inspect(eid)
        if not info["Running"] and info["ExitCode"] is not None:
            break
        import time
        time.sleep(0.05)
    seen["detached_exit"] = info["ExitCode"]
    assert info["ExitCode"] == 9, info

    # swarm: a node not in a swarm.
    assert c.info()["Swarm"]["LocalNodeState"] == "inactive"
    try:
        c.swarm.reload()
        raise AssertionError("swarm inspect succeeded")
    except APIError as e:
        seen["swarm"] = [e.status_code, e.explanation]
        assert e.status_code == 503, e
        assert "This node is not a swarm manager." in e.explanation, e

    ctr.remove(force=True)
    net.remove()
    net2.remove()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(sys.argv[1])
