"""Plumbing for xapi host plugins: the lab's equivalent of dom0's ``XenAPIPlugin`` module.

dom0's module is not published on PyPI; this one behaves the same way (Python 3.6+):

- ``dispatch(fn_table)`` reads the single argv string xapi passes (an XML-RPC methodCall
  ``fn(session_ref, {args})``), rebuilds a session with ``XenAPI.xapi_local()`` carrying
  the caller's session reference (so calls back into xapi run with the caller's rights;
  an invalid one surfaces from the XenAPI client as ``xmlrpc.client.Fault(401)``), calls
  ``fn_table[fn](session, args)`` and prints one XML-RPC methodResponse on stdout.
- A return value is sent as ``{'Status': 'Success', 'Value': result}``; xapi only accepts
  a string there.
- ``Failure(code, params)`` is sent as ``ErrorDescription [code] + params``.
- Any other exception becomes ``XENAPI_PLUGIN_FAILURE [fn, ExceptionClassName, str(e)]``.
- An unknown fn becomes ``UNKNOWN_XENAPI_PLUGIN_FUNCTION [fn]``.
- Output goes through ``print`` as dom0's does: under dom0's Python 3.6 without a locale
  stdout is ASCII, so a non-ASCII result fails while printing and is reported as
  ``XENAPI_PLUGIN_FAILURE [fn, 'UnicodeEncodeError', ...]``.
"""
from __future__ import print_function

import sys
import xmlrpc.client

import XenAPI

__all__ = ["Failure", "dispatch", "success_message", "failure_message"]


class Failure(Exception):
    """Raise from a plugin function to return the XenAPI error ``[code] + params``."""

    def __init__(self, code, params):
        Exception.__init__(self)
        self.params = [code] + params

    def __str__(self):
        return str(self.params)


def _response(envelope):
    # methodresponse=True: a <methodResponse> with one param, the status struct
    return xmlrpc.client.dumps((envelope,), "", True)


def success_message(result):
    """The methodResponse text of a successful call."""
    return _response({"Status": "Success", "Value": result})


def failure_message(description):
    """The methodResponse text of a failed call (``description = [code] + params``)."""
    return _response({"Status": "Failure", "ErrorDescription": description})


def _local_session(session_ref):
    session = XenAPI.xapi_local()
    session._session = session_ref
    return session


def dispatch(fn_table):
    """Run the plugin function xapi asked for and print its methodResponse."""
    if len(sys.argv) != 2:
        raise Exception("Incorrect number of commandline arguments")
    params, fn = xmlrpc.client.loads(sys.argv[1])
    session_ref, args = params[0], params[1]
    if fn not in fn_table:
        print(failure_message(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", fn]))
        return
    session = _local_session(session_ref)
    try:
        print(success_message(fn_table[fn](session, args)))
    except Failure as e:
        print(failure_message(e.params))
    except Exception as e:
        print(failure_message(["XENAPI_PLUGIN_FAILURE", fn, e.__class__.__name__, str(e)]))
