"""``deploy/local/stack`` itself, on a broker of the tests' own (never the shared stack)."""

from __future__ import annotations

import signal

import pytest

from tests.integration.private_kafka import PrivateKafka
from workers.process.connectivity import check_kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_after_the_broker_died_without_down_starts_it_again(
    private_kafka: PrivateKafka,
) -> None:
    dead = private_kafka.pid()
    assert dead is not None
    private_kafka.stop(signal.SIGKILL)  # a crash: the pid file still names the dead broker
    assert private_kafka.pid_file.read_text().strip() == str(dead)

    result = private_kafka.up()

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "removing the stale pid file" in output
    assert "kafka is up" in output
    # The dead broker's registration outlives it until its session times out: the new one
    # is refused meanwhile (about 10-20 s), and 'up' says why it waits instead of failing.
    broker_log = (private_kafka.root / "kafka" / "kafka.log").read_text(errors="replace")
    if "DuplicateBrokerRegistrationException" in broker_log:
        assert "waits for the registration of the broker that died" in output
    alive = private_kafka.pid()
    assert alive is not None and alive != dead
    check_kafka(private_kafka.bootstrap, timeout_s=10.0)

    again = private_kafka.up()  # and up on a running broker changes nothing
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kafka is already up" in again.stdout
    assert private_kafka.pid() == alive
