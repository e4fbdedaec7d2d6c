"""Does the agent's report say what the engine says? docker_ps rendered from the report
(as dom0 reads it) compared with docker_ps rendered from a direct Docker API client."""

from dom0_plugin import agent_transport as T
from dom0_plugin import documents
from dom0_plugin.docker_api import DockerClient, unix_connector
from tests.agent.conftest import DOMID, wait_for


def direct_ps_document(engine):
    with DockerClient(unix_connector(engine.socket), vm="direct") as client:
        return documents.render_ps(client.ps(all=True))


def agent_ps_document(dom0):
    return documents.render_ps(T.to_docker_shapes(T.read_report(dom0, DOMID))[0])


def entries(xml):
    """The <item> entries of a docker_ps document, in a fixed order (containers created
    in the same second may come in either order: the report keeps whole seconds)."""
    head, _, body = xml.partition("<docker_ps>")
    return head, sorted(body.split("</item>"))


def documents_agree(dom0, engine):
    """Wait until docker_ps rendered from the report equals the one from Docker."""
    seen = []

    def same():
        expected = direct_ps_document(engine)
        seen[:] = [expected, agent_ps_document(dom0)]
        return entries(seen[1]) == entries(expected) and expected
    try:
        return wait_for(same, 15, what="the agent's docker_ps to match Docker's")
    except AssertionError:
        print("docker:", seen[0], "\nagent: ", seen[1] if len(seen) > 1 else None)
        raise
