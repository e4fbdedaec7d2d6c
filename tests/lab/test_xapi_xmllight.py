"""xapi's own XML code as the simulator reproduces it: the plugin argv printer and the
plugin output decoder, on inputs an XML-RPC client cannot send (control characters)."""
import pytest

from lab.xapi.wire import ApiError
from lab.xapi.xmllight import decode_plugin_output, esc_pcdata, method_call


def test_printer_drops_control_characters_but_keeps_tab_lf_cr():
    assert esc_pcdata("a\x00b\x01c\x1fd\te\nf\rg\x7fh") == "abcd\te\nf\rg\x7fh"


def test_printer_escapes_four_characters_only():
    assert esc_pcdata("<>&\"'") == "&lt;&gt;&amp;&quot;'"


def test_empty_names_and_values_are_self_closed():
    # "" is an empty element; a string of dropped characters is not "" to xapi, so it
    # prints as an open/close pair with nothing inside
    xml = method_call("", "OpaqueRef:s", [("", ""), ("k", "\x01")])
    assert xml == ("<methodCall><methodName/><params><param><value>OpaqueRef:s</value>"
                   "</param><param><value><struct><member><name/><value/></member>"
                   "<member><name>k</name><value></value></member></struct></value></param>"
                   "</params></methodCall>")


def ok(value_xml):
    return ("<methodResponse><params><param><value><struct><member><name>Status</name>"
            "<value>Success</value></member><member><name>Value</name>%s</member>"
            "</struct></value></param></params></methodResponse>" % value_xml).encode()


@pytest.mark.parametrize("out,expected", [
    (ok("<value><![CDATA[<raw> & text]]></value>"), "<raw> & text"),
    (ok("<value>a<!-- c -->b</value>"), "ab"),
    (b"\n\n  " + ok("<value>lead</value>"), "lead"),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + ok("<value>caf&#233;</value>")
     .replace(b"&#233;", b"\xe9"), "caf\u00e9"),
    (ok("<value>\t\n </value>"), ""),
])
def test_decoder_successes(out, expected):
    assert decode_plugin_output(out) == expected


@pytest.mark.parametrize("out,details", [
    (ok('<value x="1">v</value>'),
     ["INTERNAL_ERROR", "XMLRPC.RunTimeTypeError(\"unbox: Element=value should contain "
                        "'value'\", _)"]),
    (ok("<value><array><data/></array></value>"),
     ["INTERNAL_ERROR", "XMLRPC.RunTimeTypeError(\"unbox: Element=array should contain "
                        "'string'\", _)"]),
    (b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>x"
     b"</int></value></member><member><name>faultString</name><value>s</value></member>"
     b"</struct></value></fault></methodResponse>",
     ["INTERNAL_ERROR", 'Failure("Int32.of_string")']),
    (b"<methodResponse><fault><value><struct/></value></fault></methodResponse>",
     ["INTERNAL_ERROR", "Not_found"]),
    (b"<other/>", ["INTERNAL_ERROR", "XMLRPC.RunTimeTypeError(\"unbox: Element=other should "
                                     "contain 'methodResponse'\", _)"]),
])
def test_decoder_errors(out, details):
    with pytest.raises(ApiError) as e:
        decode_plugin_output(out)
    assert e.value.description == details
