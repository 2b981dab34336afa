#!/usr/bin/env python3
"""Writes dgx_2s8g8n.xml: an hwloc 2 XML topology of a 2-socket box with
8 GPUs and 8 RDMA NICs.  Per socket: one host bridge, two PCIe switches,
each switch with two downstream ports holding one GPU and one NIC.
GPU g = 4*socket + 2*switch + port pairs with NIC mlx5_g.
Run: python3 gen_xml.py > dgx_2s8g8n.xml (the output is committed)."""

CORES = 4  # per socket, one PU each
out = []
w = out.append
gp = [100]


def g():
    gp[0] += 1
    return gp[0]


def mask(bits):
    return "0x%08x" % sum(1 << b for b in bits)


allcpu = mask(range(2 * CORES))
w('<?xml version="1.0" encoding="UTF-8"?>')
w('<!DOCTYPE topology SYSTEM "hwloc2.dtd">')
w('<topology version="2.0">')
w(f'<object type="Machine" os_index="0" cpuset="{allcpu}" complete_cpuset="{allcpu}" '
  f'allowed_cpuset="{allcpu}" nodeset="0x00000003" complete_nodeset="0x00000003" '
  f'allowed_nodeset="0x00000003" gp_index="1">')
for p in range(2):
    cpus = mask(range(p * CORES, (p + 1) * CORES))
    ns = "0x%08x" % (1 << p)
    w(f'<object type="Package" os_index="{p}" cpuset="{cpus}" complete_cpuset="{cpus}" '
      f'nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}">')
    w(f'<object type="NUMANode" os_index="{p}" cpuset="{cpus}" complete_cpuset="{cpus}" '
      f'nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}" local_memory="68719476736"/>')
    for c in range(p * CORES, (p + 1) * CORES):
        m = mask([c])
        w(f'<object type="Core" os_index="{c}" cpuset="{m}" complete_cpuset="{m}" '
          f'nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}">')
        w(f'<object type="PU" os_index="{c}" cpuset="{m}" complete_cpuset="{m}" '
          f'nodeset="{ns}" complete_nodeset="{ns}" gp_index="{g()}"/>')
        w('</object>')
    pb = p * 0x40
    w(f'<object type="Bridge" gp_index="{g()}" bridge_type="0-1" depth="0" '
      f'bridge_pci="0000:[{pb:02x}-{pb + 0x3f:02x}]">')
    for s in range(2):
        sb = pb + 0x10 * (s + 1)
        w(f'<object type="Bridge" gp_index="{g()}" bridge_type="1-1" depth="1" '
          f'bridge_pci="0000:[{sb:02x}-{sb + 0xf:02x}]" pci_busid="0000:{pb:02x}:{s + 1:02x}.0" '
          f'pci_type="0604 [10b5:97a0] [0000:0000] 00" pci_link_speed="31.5">')
        for k in range(2):
            db = sb + 1 + k
            n = 4 * p + 2 * s + k
            w(f'<object type="Bridge" gp_index="{g()}" bridge_type="1-1" depth="2" '
              f'bridge_pci="0000:[{db:02x}-{db:02x}]" pci_busid="0000:{sb:02x}:{k:02x}.0" '
              f'pci_type="0604 [10b5:97a0] [0000:0000] 00" pci_link_speed="31.5">')
            w(f'<object type="PCIDev" gp_index="{g()}" pci_busid="0000:{db:02x}:00.0" '
              f'pci_type="0302 [10de:20b0] [10de:1450] a1" pci_link_speed="31.5"/>')
            w(f'<object type="PCIDev" gp_index="{g()}" pci_busid="0000:{db:02x}:00.1" '
              f'pci_type="0207 [15b3:101b] [15b3:0007] 00" pci_link_speed="31.5">')
            w(f'<object type="OSDev" gp_index="{g()}" name="mlx5_{n}" osdev_type="3"/>')
            w(f'<object type="OSDev" gp_index="{g()}" name="ib{n}" osdev_type="2"/>')
            w('</object>')
            w('</object>')
        w('</object>')
    w('</object>')
    w('</object>')
w('</object>')
w('<distances2 type="NUMANode" nbobjs="2" kind="5" indexing="os">')
w('<indexes length="4">0 1 </indexes>')
w('<u64values length="12">10 21 21 10 </u64values>')
w('</distances2>')
w('</topology>')
print("\n".join(out))
