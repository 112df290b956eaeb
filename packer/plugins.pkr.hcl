# Plugins for current Packer (`packer init packer/`). Packer 1.6.6 (Debian bookworm) has the
# qemu builder and the ansible provisioner built in and rejects this block, so it lives in
# its own file: validate there with `packer validate packer/appliance.pkr.hcl`, which reads
# only that file; current Packer reads the whole directory.
packer {
  required_version = ">= 1.6.6"
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
    ansible = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/ansible"
    }
    vagrant = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/vagrant"
    }
  }
}
