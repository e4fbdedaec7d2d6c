"""The XML documents XO and XenCenter read (consumer-contract.md)."""

import os
import re
import subprocess
import time
import xml.dom.minidom
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dom0_plugin import constants as C
from dom0_plugin import documents as D

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECIAL = C.SPECIAL_ELEMENT

# Characters that stress escaping and encoding, mixed into hypothesis' own text.
TRICKY = list("<>&\"']]>\r\n\t ;/%?=") + ["\x00", "\x01", "\x1f", "\x7f", "\x85",
                                           "\u00e9", "\u2028", "\ud800", "\udfff",
                                           "\ufffe", "\uffff", "\U0001f600", "]]>"]
texts = st.lists(st.one_of(st.characters(exclude_categories=()),
                           st.sampled_from(TRICKY)), max_size=40).map("".join)
keys = st.one_of(texts, st.sampled_from(["entry", "item", "xmlns", "1abc", "a:b",
                                         "com.example/x", "%CPU", SPECIAL, "ok_Name-1.x"]))


def valid_xml_char(ch):
    code = ord(ch)
    return (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF
            or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF)


def expected_attribute(text):
    return "".join(ch if valid_xml_char(ch) else "\ufffd" for ch in text)


def expected_text(text):
    """What a parser must give back: invalid characters replaced by U+FFFD, and line
    ends as XML 1.0 parsers return them (CR LF and CR read as LF)."""
    text = "".join(ch if valid_xml_char(ch) else "\ufffd" for ch in text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse(document, root):
    """Check the frame of a document and parse it both ways."""
    assert isinstance(document, str)
    document.encode("utf-8")                       # characters as themselves (UTF-8)
    # no numeric character reference in text (XO would show it literally); TAB, LF and
    # CR keep theirs only inside attribute values
    markup = re.sub(r"<!\[CDATA\[.*?\]\]>", "", document, flags=re.S)   # text as it is
    assert not re.search(r"&#(?!9;|10;|13;)", markup), document
    assert not re.search(r">[^<]*&#", markup), document
    assert document.startswith('<?xml version="1.0" ?><%s' % root)
    xml.dom.minidom.parseString(document)
    tree = ET.fromstring(document)
    assert tree.tag == root
    return tree


def text_of(element):
    return element.text or ""


def decoded_children(element):
    """{key: child} with special elements decoded back to their key."""
    out = []
    for child in element:
        if child.tag == SPECIAL:
            assert set(child.attrib) == {"name"}
            out.append((child.get("name"), child))
        else:
            assert not child.attrib
            out.append((child.tag, child))
    return out


def container(i=0, **fields):
    base = {"Id": "%064x" % (i + 1), "Names": ["/c%d" % i], "Image": "img:1",
            "Command": "sleep 1000", "Created": 1700000000 + i, "State": "running",
            "Status": "Up 2 hours", "Ports": [], "Labels": {}}
    base.update(fields)
    return base


# --- text -------------------------------------------------------------------------------

@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_text_round_trips(text):
    doc = D.render_version({"Version": text})
    tree = parse(doc, "docker_version")
    assert text_of(tree.find("Version")) == expected_text(text)


def test_escaped_exactly_once():
    doc = D.render_ps([container(Command="a && b < c > d ]]> e")])
    # < or > in a text: a CDATA section (]]> split across two), nothing else escaped
    assert "<command><![CDATA[a && b < c > d ]]]]><![CDATA[> e]]></command>" in doc
    doc2 = D.render_ps([container(Command="a && b")])
    assert "<command>a &amp;&amp; b</command>" in doc2
    assert ET.fromstring(doc).find("item/entry/command").text == "a && b < c > d ]]> e"


def test_non_ascii_and_invalid_characters():
    doc = D.render_version({"Version": "caf\u00e9-\u65e5\u672c \U0001f600 \x00\x1b \ud800 "
                                       "\uffff \t"})
    assert "<Version>caf\u00e9-\u65e5\u672c \U0001f600 \ufffd\ufffd \ufffd \ufffd \t</Version>" in doc
    assert "&#" not in doc
    assert ET.fromstring(doc.encode("utf-8")).find("Version").text == (
        "caf\u00e9-\u65e5\u672c \U0001f600 \ufffd\ufffd \ufffd \ufffd \t")


def test_wire_size_counts_utf8_bytes_and_xmlrpc_escapes():
    import xmlrpc.client
    for doc in (D.render_ps([container(Names=["/caf\u00e9-\u65e5\u672c"],
                                       Command="a && b < c")]),
                D.render_version({"Version": "\U0001f600 & <x>"})):
        body = xmlrpc.client.dumps((doc,)).encode("utf-8")
        empty = xmlrpc.client.dumps(("",)).encode("utf-8")
        assert D.wire_size(doc) == len(body) - len(empty)


# --- keys -------------------------------------------------------------------------------

@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, texts, max_size=8))
def test_keys_and_values_round_trip(labels):
    doc = D.render_ps([container(Labels=labels)])
    tree = parse(doc, "docker_ps")
    assert len(list(tree.iter("entry"))) == 1     # no 'entry' element inside an entry
    decoded = decoded_children(tree.find("item/entry/labels")) if labels else []
    # keys travel in attribute values, where TAB, LF, CR are references (kept exactly)
    assert [k for k, _ in decoded] == [expected_attribute(k) for k in labels]
    assert [text_of(e) for _, e in decoded] == [expected_text(v) for v in labels.values()]


@pytest.mark.parametrize("key,plain", [
    ("Name", True), ("com.docker.compose.project", True), ("_x-1.2", True),
    ("com.example/x", False), ("1abc", False), ("a:b", False), ("%CPU", False),
    ("entry", False), ("item", False), (SPECIAL, False), ("xmlfoo", False),
    ("XMLNS", False), ("", False), ("a b", False), ("\u00e9", False), ("x" * 201, False),
])
def test_plain_names(key, plain):
    assert D.is_plain_name(key) is plain


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=4)),
    max_leaves=30))
def test_any_json_value_makes_a_well_formed_document(value):
    parse(D.render_inspect({"Config": value, "entry": value}), "docker_inspect")


def test_lists_booleans_none_and_numbers():
    tree = parse(D.render_info({"Plugins": {"Volume": ["local", "nfs"]},
                                "IPv4Forwarding": True, "Debug": False, "Swarm": None,
                                "Containers": 3, "Load": 0.5, "Empty": [], "Big": 10 ** 60,
                                "SystemTime": "now", "NGoroutines": 40}), "docker_info")
    assert [e.text for e in tree.findall("Plugins/Volume/item")] == ["local", "nfs"]
    assert tree.findtext("IPv4Forwarding") == "True"
    assert tree.findtext("Debug") == "False"
    assert tree.find("Swarm") is not None and not tree.findtext("Swarm")
    assert tree.findtext("Containers") == "3" and tree.findtext("Load") == "0.5"
    assert tree.findtext("Big") == str(10 ** 60)
    assert tree.find("SystemTime") is None and tree.find("NGoroutines") is None


def test_deep_nesting_and_huge_numbers_are_bounded():
    value = "leaf"
    for _ in range(500):
        value = {"a": [value]}
    parse(D.render_inspect({"Deep": value, "Huge": 10 ** 2000}), "docker_inspect")


@pytest.mark.parametrize("bad", [None, "x", [1], 3])
def test_wrong_input_types_raise(bad):
    for render in (D.render_info, D.render_version, D.render_inspect, D.render_top):
        with pytest.raises(ValueError):
            render(bad)
    if not isinstance(bad, list):
        with pytest.raises(ValueError):
            D.render_ps(bad)


# --- docker_ps --------------------------------------------------------------------------

def test_docker_ps_shape():
    doc = D.render_ps([container(
        Names=["/web"], Image="nginx:1.27", Command="nginx -g 'daemon off;'",
        Ports=[{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
        Labels={"com.example/x": "1", "a.b": "2"})])
    tree = parse(doc, "docker_ps")
    entry = tree.find("item/entry")
    assert [e.tag for e in entry] == ["id", "names", "container", "image", "command",
                                      "created", "status", "state", "ports", "labels"]
    assert entry.findtext("id") == "%064x" % 1
    assert entry.findtext("container") == ("%064x" % 1)[:10]
    assert entry.findtext("names") == "web"
    assert entry.findtext("command") == "nginx -g 'daemon off;'"
    assert entry.findtext("created") == "1700000000"
    port = entry.find("ports/item")
    assert [(e.tag, e.text) for e in port] == [("IP", "0.0.0.0"), ("PrivatePort", "80"),
                                              ("PublicPort", "8080"), ("Type", "tcp")]


def test_empty_docker_ps():
    assert D.render_ps([]) == '<?xml version="1.0" ?><docker_ps/>'
    assert D.render_ps(["junk", 3, None]) == '<?xml version="1.0" ?><docker_ps/>'


@pytest.mark.parametrize("state,status_text,extra,expected", [
    ("running", "Up 3 hours", {}, "Up"),
    ("running", "Up 3 hours (healthy)", {}, "Up"),
    ("restarting", "Restarting (1) 2 seconds ago", {}, "Up"),
    ("paused", "Up 3 hours (Paused)", {}, "Up (Paused)"),
    ("exited", "Exited (137) 5 minutes ago", {}, "Exited (137)"),
    ("exited", "Exited (0) 5 minutes ago", {}, "Exited (0)"),
    ("exited", "Exited (2) 1 second ago", {"ExitCode": 5}, "Exited (5)"),
    ("exited", "garbage", {}, "Exited (0)"),
    ("created", "Created", {}, "Exited (0)"),
    ("dead", "Dead", {}, "Exited (0)"),
    ("dead", "Exited (1) 2 days ago", {}, "Exited (1)"),
    ("removing", "Removal In Progress", {}, "Exited (0)"),
    (None, "Up 5 minutes", {}, "Up"),                     # engines without State
    (None, "Up 5 minutes (Paused)", {}, "Up (Paused)"),
    (None, "Exited (255) 1 hour ago", {}, "Exited (255)"),
    ("weird", "", {}, "Exited (0)"),
])
def test_status_normalisation(state, status_text, extra, expected):
    fields = dict(State=state, Status=status_text, **extra)
    if state is None:
        del fields["State"]
    c = container(**fields)
    if state is None:
        del c["State"]
    assert D.normalise_status(c) == expected
    entry = ET.fromstring(D.render_ps([c])).find("item/entry")
    assert entry.findtext("status") == expected
    assert entry.findtext("state") in D.KNOWN_STATES


@pytest.mark.parametrize("names,expected", [
    (["/web"], "web"), (["/other/web", "/web"], "web"), (["web"], "web"),
    (["/a/b"], "a/b"), ([], ""), (None, ""), ("/solo", "solo"), ([3, "/x"], "x"),
])
def test_names(names, expected):
    assert ET.fromstring(D.render_ps([container(Names=names)])).findtext(
        "item/entry/names") == expected


@pytest.mark.parametrize("created,expected", [
    (1700000000, "1700000000"), (1700000000.7, "1700000000"), ("1700000000", "1700000000"),
    (True, "0"), ("soon", "0"), (None, "0"), (float("inf"), "0")])
def test_created(created, expected):
    assert ET.fromstring(D.render_ps([container(Created=created)])).findtext(
        "item/entry/created") == expected


def many(n, label_size=40):
    return [container(i, Names=["/service-%d" % i],
                      State="running" if i % 3 else "exited",
                      Status="Up 1 hour" if i % 3 else "Exited (137) 1 hour ago",
                      Command="/usr/local/bin/entrypoint.sh --serve %d" % i,
                      Ports=[{"PrivatePort": 80, "Type": "tcp"}],
                      Labels={"com.docker.compose.project": "p" * label_size,
                              "com.example/x": "y"})
            for i in range(n)]


@pytest.mark.parametrize("n", [2000, 10000])
def test_budget_with_thousands_of_containers(n):
    result = D.render_ps_document(many(n))
    assert D.wire_size(result.xml) <= C.DOCUMENT_BUDGET_BYTES
    assert len(result.xml) < 300 * 1024
    tree = parse(result.xml, "docker_ps")
    entries = list(tree.iter("entry"))
    assert len(entries) == result.shown and result.total == n
    assert 0 < result.shown < n
    assert result.dropped_fields == D.PS_DROP_ORDER
    # every entry keeps what XO and XenCenter show
    for entry in entries:
        assert [e.tag for e in entry] == list(D.PS_REQUIRED)
        assert entry.findtext("created").isdigit() and entry.findtext("image") == "img:1"
    # the room is used: one more entry would not fit
    assert C.DOCUMENT_BUDGET_BYTES - D.wire_size(result.xml) < 400
    # exited ones left out before running ones, the oldest first
    running = [c for c in many(n) if c["State"] == "running"]
    newest = sorted(running, key=lambda c: -c["Created"])[:result.shown]
    ids = [e.findtext("id") for e in entries]
    assert sorted(ids) == sorted(c["Id"] for c in newest)
    assert ids == sorted(ids)                    # the list's own order kept


def test_optional_fields_dropped_in_order():
    containers = many(300, label_size=400)
    full = D.render_ps_document(containers, budget=10 ** 9)
    assert full.dropped_fields == () and full.shown == 300
    # Each budget just under the previous size drops one more field, all containers kept.
    budget = D.wire_size(full.xml) - 1
    for count in range(1, len(D.PS_DROP_ORDER) + 1):
        result = D.render_ps_document(containers, budget=budget)
        assert result.dropped_fields == D.PS_DROP_ORDER[:count] and result.shown == 300
        entry = ET.fromstring(result.xml).find("item/entry")
        assert [e.tag for e in entry] == [f for f in D.PS_FIELDS
                                          if f not in D.PS_DROP_ORDER[:count]]
        budget = D.wire_size(result.xml) - 1
    result = D.render_ps_document(containers, budget=budget)
    assert result.shown == 299


def test_huge_single_fields_are_capped():
    doc = D.render_ps([container(Command="x" * 10 ** 6, Image="i" * 10 ** 6,
                                 Labels=dict(("k%d" % i, "v") for i in range(10 ** 4)))])
    tree = parse(doc, "docker_ps")
    assert len(tree.findtext("item/entry/command")) == 1024
    assert len(tree.find("item/entry/labels")) == 100


def test_render_ps_is_fast():
    containers = many(2000)
    started = time.perf_counter()
    D.render_ps(containers)
    assert time.perf_counter() - started < 1.0


def test_render_ps_is_fast_on_python36(python36):
    script = ("import time; from dom0_plugin import documents as D\n"
              "cs = [{'Id': '%064x' % i, 'Names': ['/c%d' % i], 'Image': 'img',"
              " 'Command': 'sleep 1000 & <x>', 'Created': 1, 'State': 'running',"
              " 'Status': 'Up', 'Ports': [{'PrivatePort': 80}],"
              " 'Labels': {'a.b': 'c\\u00e9'}} for i in range(2000)]\n"
              "t = time.perf_counter(); D.render_ps(cs); print(time.perf_counter() - t)\n")
    out = subprocess.check_output([python36, "-c", script], cwd=REPO,
                                  env={"PATH": "/usr/bin:/bin"})
    assert float(out) < 1.0


# --- docker_top and the other documents -------------------------------------------------

def test_docker_top():
    top = {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD", "%CPU"],
           "Processes": [["root", "1", "0", "0", "10:00", "?", "00:00:00", "sleep <1>",
                          "0.5"],
                         ["root", "7", "1", "0", "10:00", "?", "00:00:01", "sh"]]}
    tree = parse(D.render_top(top), "docker_top")
    processes = tree.findall("item/Process")
    assert len(processes) == 2
    first = decoded_children(processes[0])
    assert [k for k, _ in first] == top["Titles"]
    assert processes[0].findtext("CMD") == "sleep <1>"
    assert [text_of(e) for k, e in decoded_children(processes[1])][-1] == ""


def test_docker_top_budget():
    top = {"Titles": ["PID", "CMD", "TIME"],
           "Processes": [[str(i), "c" * 500, "00:00:00"] for i in range(5000)]}
    doc = D.render_top(top)
    assert D.wire_size(doc) <= C.DOCUMENT_BUDGET_BYTES
    rows = parse(doc, "docker_top").findall("item/Process")
    assert 0 < len(rows) < 5000 and rows[0].findtext("PID") == "0"
    assert D.render_top({"Titles": [], "Processes": []}) == C.XML_DECLARATION + "<docker_top/>"


def test_oversized_mapping_keeps_the_important_keys():
    info = {"ServerVersion": "20.10.24", "Driver": "overlay2",
            "Warnings": ["w" * 5000] * 500, "Labels": ["l" * 100000] * 5,
            "Blob": "b" * 10 ** 6}
    tree = parse(D.render_info(info), "docker_info")
    assert tree.findtext("ServerVersion") == "20.10.24"
    assert tree.findtext("Driver") == "overlay2"
    huge = {"Id": "a" * 64}
    huge.update(("K%d" % i, "v" * 100) for i in range(20000))
    doc = D.render_inspect(huge)
    assert D.wire_size(doc) <= C.DOCUMENT_BUDGET_BYTES
    parse(doc, "docker_inspect")


def test_over_budget_exited_go_first_oldest_first():
    containers = many(300)
    full = D.render_ps_document(containers, budget=10 ** 9)
    slim = D.render_ps_document(containers, budget=D.wire_size(full.xml) // 2)
    assert slim.dropped_fields == D.PS_DROP_ORDER and 200 < slim.shown < 300
    kept = {e.findtext("id") for e in ET.fromstring(slim.xml).iter("entry")}
    running = {c["Id"] for c in containers if c["State"] == "running"}
    exited = sorted((c for c in containers if c["State"] == "exited"),
                    key=lambda c: -c["Created"])
    assert running <= kept
    assert kept - running == {c["Id"] for c in exited[:slim.shown - len(running)]}


def test_top_never_has_an_empty_pid_cmd_or_time():
    top = {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
           "Processes": [["root", "1", "0", "0", "10:00", "?", "00:00:01", "sleep 1"],
                         ["root", "7", "1", "0", "10:00", "?", "", ""],      # no cmdline
                         ["root", "", "1", "0", "10:00", "?", "00:00:00", "x"],
                         ["root", "8", "1", "0", "10:00", "?", " ", "  "]]}
    rows = parse(D.render_top(top), "docker_top").findall("item/Process")
    assert [r.findtext("PID") for r in rows] == ["1", "7", "8"]
    for row in rows:
        for title in ("PID", "CMD", "TIME"):
            assert (row.findtext(title) or "").strip(), (title, ET.tostring(row))
    assert rows[1].findtext("CMD") == "-" and rows[1].findtext("TIME") == "-"
    assert rows[1].findtext("TTY") == "?"


def test_a_list_only_last_known_offers_no_lifecycle_button():
    status = D.unknown_status(1796349720)
    assert status == "Unknown (unreachable since 2026-12-04 02:02 UTC)"
    doc = D.render_ps_document([container(0), container(1, State="paused")], status=status)
    entries = list(parse(doc.xml, "docker_ps").iter("entry"))
    assert [e.findtext("status") for e in entries] == [status, status]
    assert [e.findtext("state") for e in entries] == ["unknown", "unknown"]
    assert not any(s.startswith(("Up", "Exited")) for s in (e.findtext("status")
                                                            for e in entries))
