# The appliance image: a Debian bookworm qcow2 provisioned with ansible/roles/appliance
# (the same role as the Vagrantfile and bare hosts), plus a Vagrant box for libvirt.
#
#   make image                      # builds the base image offline, then runs this
#   packer build -var base_image=URL-or-path -var base_image_checksum=sha256:... \
#                -var ssh_private_key_file=KEY -var appliance_wheelhouse=DIR packer/appliance.pkr.hcl
#
# Works with Debian's Packer 1.6.6 (built-in qemu builder) and current Packer (plugins in
# plugins.pkr.hcl, `packer init packer/`).

variable "base_image" {
  type        = string
  description = "Debian bookworm qcow2 to start from: a URL (e.g. a genericcloud image) or a local path."
}

variable "base_image_checksum" {
  type        = string
  default     = "none"
  description = "Checksum of base_image, e.g. sha256:HEX or file:URL-of-SHA512SUMS; none for a local image you built."
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm where the CPU allows it, tcg otherwise (nested KVM that cannot run a Linux kernel)."
}

variable "cpu_model" {
  type        = string
  default     = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"
  description = "QEMU -cpu model. x86-64-v2 at least: NumPy 2 wheels refuse older CPUs, and plain qemu64 lacks SSE4.2 and POPCNT. Works under TCG and KVM alike (-cpu host crashes under nested KVM)."
}

variable "cpus" {
  type    = number
  default = 2
}

variable "memory" {
  type        = number
  default     = 2048
  description = "MiB of guest memory during the build."
}

variable "disk_size" {
  type        = string
  default     = "8G"
  description = "Virtual size of the output disk (the base image is grown to it)."
}

variable "ssh_username" {
  type    = string
  default = "root"
}

variable "ssh_private_key_file" {
  type        = string
  default     = ""
  description = "Key whose public half is in the base image's authorized_keys (make image generates one)."
}

variable "ssh_password" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Password login instead of a key (cloud images with a preset user)."
}

variable "ssh_authorized_key" {
  type        = string
  default     = ""
  description = "Public key left in root's authorized_keys of the finished image; empty: console login only."
}

variable "appliance_wheel" {
  type        = string
  default     = ""
  description = "Wheel of this repo (pip wheel --no-deps -w dist .); empty: install appliance_version from the wheelhouse or PyPI."
}

variable "appliance_wheelhouse" {
  type        = string
  default     = ""
  description = "Tar archive (on this host) of wheels of every dependency, so the guest needs no PyPI access."
}

variable "appliance_version" {
  type    = string
  default = "0.2.0"
}

variable "output_directory" {
  type    = string
  default = "packer/output"
}

variable "vm_name" {
  type    = string
  default = "appliance.qcow2"
}

source "qemu" "appliance" {
  iso_url          = var.base_image
  iso_checksum     = var.base_image_checksum
  disk_image       = true
  format           = "qcow2"
  disk_size        = var.disk_size
  disk_interface   = "virtio"
  disk_compression = true
  net_device       = "virtio-net"
  accelerator      = var.accelerator
  qemuargs         = [["-cpu", var.cpu_model]]
  cpus             = var.cpus
  memory           = var.memory
  headless         = true

  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_password         = var.ssh_password
  ssh_timeout          = "20m"
  shutdown_command     = "shutdown -P now"

  output_directory = var.output_directory
  vm_name          = var.vm_name
}

build {
  sources = ["source.qemu.appliance"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/site.yml"
    groups        = ["appliance"]
    user          = var.ssh_username
    use_proxy     = false
    # JSON, so that booleans stay booleans (ansible-core 2.19 refuses "true" as a condition).
    extra_arguments = [
      "--extra-vars", jsonencode({
        appliance_install_source = var.appliance_wheel == "" ? "pypi" : "wheel"
        appliance_wheel          = var.appliance_wheel
        appliance_wheelhouse     = var.appliance_wheelhouse
        appliance_version        = var.appliance_version
        appliance_image_build    = true
        appliance_api_listen     = "0.0.0.0:8041"
        appliance_api_tls        = "auto" # beyond loopback: HTTPS, self-signed at first start
        # a first start under TCG emulation takes minutes, not seconds
        appliance_status_timeout = 900
      }),
    ]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False"]
  }

  # Machine-specific state must not ship: data (and the generated admin token), SSH host
  # keys (first boot makes new ones), the machine id, the build's SSH key.
  provisioner "shell" {
    environment_vars = ["SSH_AUTHORIZED_KEY=${var.ssh_authorized_key}"]
    script           = "${path.root}/scripts/cleanup.sh"
  }

  post-processor "vagrant" {
    output              = "${var.output_directory}/appliance-libvirt.box"
    keep_input_artifact = true
  }
}
