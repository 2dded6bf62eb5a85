"""The GPU baseline of bench/baseline.yml, operation for operation, in pyinfra's API.

Run by bench/run.py as `pyinfra -y INVENTORY bench/baseline_pyinfra.py`. The template and
files are the same ones the Ansible-syntax playbook uses.
"""

from io import StringIO

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, python, server

CUDA_HOME = "/usr/local/cuda"
LAB_ROOT = "/opt/lab"

apt.packages(name="Base tools (one apt transaction)", packages=["tree", "jq", "pkg-config"],
             no_recommends=True)

files.template(name="CUDA environment for login shells", src="templates/cuda.sh.j2",
               dest="/etc/profile.d/cuda.sh", mode="644", cuda_home=CUDA_HOME,
               ansible_managed="managed by the lab baseline")

ld_conf = files.put(name="CUDA libraries on the loader path", src="files/cuda-ld.conf",
                    dest="/etc/ld.so.conf.d/cuda.conf", mode="644")

files.line(name="CUDA_HOME for every process", path="/etc/environment", line="^CUDA_HOME=.*",
           replace="CUDA_HOME=" + CUDA_HOME)

files.line(name="Unlimited locked memory for GPU jobs", path="/etc/security/limits.d/90-gpu.conf",
           line="*  -  memlock  unlimited", escape_regex_characters=True)

files.directory(name="Lab directory", path=LAB_ROOT, mode="755")

files.directory(name="Shared datasets directory", path=LAB_ROOT + "/datasets", mode="1777")

files.put(name="Message of the day", dest="/etc/motd", mode="644",
          src=StringIO("GPU lab workstation: CUDA in %s, datasets in %s/datasets\n" % (CUDA_HOME, LAB_ROOT)))

# Ansible's `creates:`: pyinfra's idiom is a fact read while the operations are planned.
if not host.get_fact(File, path=LAB_ROOT + "/provisioned-host"):
    server.shell(name="Record the first provisioning (once)",
                 commands=["cp /etc/hostname %s/provisioned-host" % LAB_ROOT])


def _summary() -> None:
    print("%s: baseline in place (CUDA_HOME=%s)" % (host.name, CUDA_HOME))


python.call(name="Summary", function=_summary)

# The handler: runs only when the loader config changed.
server.shell(name="Refresh the loader cache", commands=["ldconfig"], _if=ld_conf.did_change)
