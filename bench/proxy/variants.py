"""Proxy rate, what is run: the rates, the step durations, who answers (the variants)."""

from __future__ import annotations

from dataclasses import dataclass

RATES = (1000, 2000, 5000, 10000, 20000, 50000, 100000)
DELAY_RATES = (1000, 10000)  # kernel with its default proxy_delay
POLICY_RATES = (1000,)  # mosnet with its default limits
STEP_S = 2.0  # each step sends rate x STEP_S requests, never for longer
POLICY_S = 3.0
SETTLE_MS = 300.0  # listen this long after the last request
DELAY_SETTLE_MS = 1500.0  # proxy_delay 0.8 s: answers come that late
FAMILIES = ("arp", "ns")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    answerer: str  # "kernel" or a PROXY mode: "lifted", "loop", "default"
    rates: tuple[int, ...]
    seconds: float = STEP_S
    settle_ms: float = SETTLE_MS
    kernel_delay: bool = False  # kernel: keep the default proxy_delay
    one_requester: bool = True  # the Ethernet source stays the peer's MAC


VARIANTS = (
    Variant("kernel", "kernel, proxy_delay 0 (reference)", "kernel", RATES),
    Variant("mosnet", "mosnet proxy, limits lifted", "lifted", RATES),
    Variant("mosnet-loop", "mosnet proxyd loop alone, lifted", "loop", RATES),
    Variant("kernel-delay", "kernel, default proxy_delay", "kernel", DELAY_RATES,
            settle_ms=DELAY_SETTLE_MS, kernel_delay=True),
    Variant("policy-one", "mosnet, default limits, 1 requester", "default", POLICY_RATES,
            seconds=POLICY_S),
    Variant("policy-many", "mosnet, default limits, new MAC each", "default", POLICY_RATES,
            seconds=POLICY_S, one_requester=False),
)  # fmt: skip
REFERENCE, SUBJECT = "kernel", "mosnet"
