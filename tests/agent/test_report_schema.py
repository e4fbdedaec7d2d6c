"""report_schema: what the agent encodes always decodes and fits; what dom0 decodes
never raises anything but ReportError, whatever the bytes (property tests)."""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsc_contract import report_schema as S

ID = "f" * 64
MANY = settings(max_examples=5000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30)

# keys the decoders know, so generated objects often get past the first checks
known_keys = st.sampled_from(
    ["schema", "agent", "started", "verbs", "seq", "time", "status", "docker", "error",
     "count", "total", "truncated", "heartbeat", "Names", "Image", "Command", "Created",
     "State", "ExitCode", "Ports", "Labels", "PrivatePort", "PublicPort", "Type", "IP",
     "Version", "ApiVersion", "NCPU", "IPv4Forwarding", "verb", "target", "args",
     "grace", "tail", "since", "max_bytes", "code", "reason", "http_status", "chunks"])
plausible = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=20)
    | st.sampled_from(["running", "up", "done", "tcp", "/web", "start", "1", "all"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(known_keys, inner,
                                                                max_size=10),
    max_leaves=25)

DECODERS = [
    lambda raw: S.decode_agent(raw),
    lambda raw: S.decode_state(raw),
    lambda raw: S.decode_version(raw),
    lambda raw: S.decode_info(raw),
    lambda raw: S.decode_container(ID, raw),
    lambda raw: S.decode_request(raw),
    lambda raw: S.decode_answer_meta(raw),
    lambda raw: S.decode_answer_result([raw]),
]


def decode_all(raw):
    for decode in DECODERS:
        try:
            decode(raw)
        except S.ReportError as error:
            assert error.reason and isinstance(str(error), str)


@MANY
@given(st.binary(max_size=2100))
def test_decoders_on_arbitrary_bytes(raw):
    decode_all(raw)


@MANY
@given(plausible)
def test_decoders_on_plausible_json(value):
    decode_all(json.dumps(value).encode())


@settings(max_examples=2000, deadline=None)
@given(json_values)
def test_decoders_on_any_json(value):
    decode_all(json.dumps(value).encode())


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=string.printable, max_size=2100))
def test_decoders_on_text(text):
    decode_all(text.encode())


names = st.from_regex(r"/[a-z0-9][a-z0-9_.-]{0,300}", fullmatch=True)
summaries = st.fixed_dictionaries({
    "Id": st.just(ID),
    "Names": st.lists(names | st.text(max_size=30), max_size=12),
    "Image": st.text(max_size=400) | st.from_regex(r"[a-z0-9][a-z0-9:/._-]{0,300}",
                                                   fullmatch=True),
    "Command": st.text(max_size=1000),
    "Created": st.integers(-10, 2 ** 60) | st.text(max_size=5),
    "State": st.sampled_from(S.KNOWN_STATES + ("weird", "")),
    "Status": st.text(max_size=40) | st.sampled_from(["Exited (3) 1 h ago", "Up 2 s"]),
    "Ports": st.lists(st.dictionaries(st.sampled_from(["IP", "PrivatePort", "PublicPort",
                                                       "Type"]),
                                      st.integers(-1, 70000) | st.sampled_from(
                                          ["tcp", "udp", "0.0.0.0", "::"])), max_size=40),
    "Labels": st.dictionaries(st.text(max_size=200), st.text(max_size=700), max_size=80),
})


@MANY
@given(summaries)
def test_every_encoded_container_fits_and_decodes(summary):
    container_id, value = S.encode_container(summary)
    assert len(value) <= S.VALUE_MAX and value.isascii()
    decoded = S.decode_container(container_id, value.encode())
    assert decoded.id == ID and decoded.state in S.KNOWN_STATES


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(list(S.INFO_FIELDS)), json_values, max_size=30))
def test_encoded_info_fits_and_decodes(info):
    value = S.encode_info(info)
    assert len(value) <= S.VALUE_MAX
    S.decode_info(value.encode())


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(S.VERBS), st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,100}",
                                               fullmatch=True))
def test_requests_round_trip(verb, target):
    args = {"stop": {"grace": 3}, "restart": {"grace": 0},
            "logs": {"tail": "all", "since": 5, "max_bytes": 100}}.get(verb, {})
    request = S.decode_request(S.encode_request(verb, target, args).encode())
    assert request == S.Request(verb, target, args)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_answers_round_trip_or_refuse_to_encode(result):
    try:
        meta, chunks = S.encode_answer("done", "", "", 0, result)
    except ValueError:
        text = json.dumps(result)
        assert len(text) > S.answer_room() or "Infinity" in text
        return
    decoded = S.decode_answer_meta(meta.encode())
    assert decoded.chunks == len(chunks)
    got = S.decode_answer_result([c.encode() for c in chunks])
    if result is not None:
        assert S.dumps(got) == S.dumps(result)


def test_layout_paths():
    rel, abs_ = S.layout(), S.layout(5)
    assert rel.state == "data/xscontainer/state"
    assert abs_.state == "/local/domain/5/data/xscontainer/state"
    assert S.container_path(abs_, 3, ID).endswith("/containers/3/" + ID)
    for bad in (0, -1, 0x7FF0, True, "5"):
        try:
            S.layout(bad)
        except ValueError:
            continue
        raise AssertionError("accepted domid %r" % (bad,))


def test_state_consistency_rules():
    good = S.encode_state(3, 10, "running", "down", "no engine", 1, 4, True, 60)
    assert S.decode_state(good.encode()).truncated
    bad = S.encode_state(3, 10, "running", "up", "", 4, 4, True, 60)
    try:
        S.decode_state(bad.encode())
    except S.ReportError as error:
        assert "disagree" in error.reason
    else:
        raise AssertionError("inconsistent state accepted")
