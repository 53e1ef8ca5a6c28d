// The one writer of domain XML. libxml2's xmlTextWriter escapes every
// attribute and text value, so no value can change the document's shape.
#include <libxml/parser.h>
#include <libxml/xmlstring.h>
#include <libxml/xmlwriter.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "absl/status/status.h"
#include "base/str_util.h"
#include "vmdriver/libvirt/domain.h"

namespace vmlet::vmdriver::libvirt {
namespace {

const xmlChar* X(const char* text) { return reinterpret_cast<const xmlChar*>(text); }
const xmlChar* X(const std::string& text) { return X(text.c_str()); }

// Whether `value` can be an XML 1.0 value at all: escaping handles markup
// characters, but no escape exists for invalid UTF-8 or C0 control
// characters other than tab, newline and carriage return.
bool IsXmlText(const std::string& value) {
  for (unsigned char c : value) {
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return xmlCheckUTF8(X(value)) != 0;
}

// `value` for an error message: control characters and bytes >= 0x80 as
// \xNN (so an invalid UTF-8 sequence shows), the rest as is.
std::string Quote(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c < 0x20 || c >= 0x80) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

// libxml2 must be initialised once before threads use it.
void InitLibxml() {
  static const bool initialized = [] {
    xmlInitParser();
    return true;
  }();
  (void)initialized;
}

// Wraps xmlTextWriter; the first failure sticks and is reported by Finish.
// Values are written through Attr, Text and Element only, which check them.
class XmlWriter {
 public:
  XmlWriter() : buffer_(xmlBufferCreate()), writer_(xmlNewTextWriterMemory(buffer_, 0)) {
    if (writer_ == nullptr) {
      ok_ = false;
      return;
    }
    xmlTextWriterSetIndent(writer_, 1);
    xmlTextWriterSetIndentString(writer_, X("  "));
  }
  ~XmlWriter() {
    if (writer_ != nullptr) xmlFreeTextWriter(writer_);
    xmlBufferFree(buffer_);
  }
  XmlWriter(const XmlWriter&) = delete;
  XmlWriter& operator=(const XmlWriter&) = delete;

  void Start(const char* name) { Check(xmlTextWriterStartElement(writer_, X(name))); }
  void StartNs(const char* prefix, const char* name, const char* ns) {
    Check(xmlTextWriterStartElementNS(writer_, X(prefix), X(name), ns ? X(ns) : nullptr));
  }
  void End() { Check(xmlTextWriterEndElement(writer_)); }
  // name="value"
  void Attr(const char* name, const std::string& value) {
    if (!CheckValue(StrCat("attribute ", name), value)) return;
    Check(xmlTextWriterWriteAttribute(writer_, X(name), X(value)));
  }
  // The text of the element `element` that is open.
  void Text(const char* element, const std::string& value) {
    if (!CheckValue(StrCat("element <", element, ">"), value)) return;
    Check(xmlTextWriterWriteString(writer_, X(value)));
  }
  // <name>value</name>
  void Element(const char* name, const std::string& value) {
    Start(name);
    Text(name, value);
    End();
  }
  // <prefix:name>value</prefix:name>, written only when value is not empty.
  void NsElementIfSet(const char* prefix, const char* name, const std::string& value) {
    if (value.empty()) return;
    StartNs(prefix, name, nullptr);
    Text(name, value);
    End();
  }
  void AttrIfSet(const char* name, const std::string& value) {
    if (!value.empty()) Attr(name, value);
  }
  void ElementIfSet(const char* name, const std::string& value) {
    if (!value.empty()) Element(name, value);
  }
  // <name/> with no content.
  void Empty(const char* name) {
    Start(name);
    End();
  }

  // Closes every open element and returns the document. There is no XML
  // declaration (no StartDocument), as in libvirt's own output.
  absl::StatusOr<std::string> Finish() {
    if (!invalid_value_.ok()) return invalid_value_;
    if (ok_) Check(xmlTextWriterEndDocument(writer_));
    if (ok_) Check(xmlTextWriterFlush(writer_));
    if (!ok_) return absl::InternalError("writing domain XML: libxml2 writer error");
    return std::string(reinterpret_cast<const char*>(xmlBufferContent(buffer_)),
                       static_cast<size_t>(xmlBufferLength(buffer_)));
  }

 private:
  void Check(int rc) {
    if (rc < 0) ok_ = false;
  }
  bool CheckValue(std::string_view where, const std::string& value) {
    if (IsXmlText(value)) return true;
    if (invalid_value_.ok()) {
      invalid_value_ = absl::InvalidArgumentError(
          StrCat("domain XML: ", where, ": ", Quote(value),
                 " has control characters or invalid UTF-8: expected printable UTF-8 text"));
    }
    return false;
  }

  xmlBufferPtr buffer_;
  xmlTextWriterPtr writer_;
  bool ok_ = true;
  absl::Status invalid_value_;  // The first value that cannot be written.
};

// vmlet's own record: ids, pod, paths, and the settings of the NICs that
// vmletd hot-plugs (libvirt does not list those).
void WriteMetadata(XmlWriter& w, const DomainMetadata& m, const std::vector<Nic>& nics) {
  w.Start("metadata");
  w.StartNs(kMetadataPrefix, "vm", kMetadataNamespace);
  w.NsElementIfSet(kMetadataPrefix, "container-id", m.container_id);
  w.NsElementIfSet(kMetadataPrefix, "sandbox-id", m.sandbox_id);
  w.NsElementIfSet(kMetadataPrefix, "pod-namespace", m.pod_namespace);
  w.NsElementIfSet(kMetadataPrefix, "pod-name", m.pod_name);
  w.NsElementIfSet(kMetadataPrefix, "pod-uid", m.pod_uid);
  w.NsElementIfSet(kMetadataPrefix, "container-name", m.container_name);
  w.NsElementIfSet(kMetadataPrefix, "image", m.image);
  w.NsElementIfSet(kMetadataPrefix, "log-path", m.log_path);
  w.NsElementIfSet(kMetadataPrefix, "instance", m.instance);
  if (m.start_paused) w.NsElementIfSet(kMetadataPrefix, "start-paused", "true");
  for (const Nic& nic : nics) {
    w.StartNs(kMetadataPrefix, "nic", nullptr);
    w.Attr("index", StrCat(nic.index));
    w.Attr("model", nic.model);
    w.AttrIfSet("mac", nic.mac);
    w.Attr("queues", StrCat(nic.queues));
    w.End();
  }
  w.End();
  w.End();
}

// <vcpu placement="static" current="VCPUS" cpuset="...">MAX</vcpu>, with
// current only when hot-plug has room (MAX > VCPUS); a cpuset also pins the
// emulator threads (<cputune>), unless they have a cpuset of their own.
void WriteVcpus(XmlWriter& w, const Domain& d) {
  const int max_vcpus = std::max(d.vcpus, d.max_vcpus);
  w.Start("vcpu");
  w.Attr("placement", "static");
  if (max_vcpus != d.vcpus) w.Attr("current", StrCat(d.vcpus));
  w.AttrIfSet("cpuset", d.cpuset);
  w.Text("vcpu", StrCat(max_vcpus));
  w.End();
  const std::string& emulator_cpuset = d.emulator_cpuset.empty() ? d.cpuset : d.emulator_cpuset;
  if (d.vcpu_pins.empty() && emulator_cpuset.empty()) return;
  w.Start("cputune");
  for (const VcpuPin& pin : d.vcpu_pins) {
    w.Start("vcpupin");
    w.Attr("vcpu", StrCat(pin.vcpu));
    w.Attr("cpuset", pin.cpuset);
    w.End();
  }
  if (!emulator_cpuset.empty()) {
    w.Start("emulatorpin");
    w.Attr("cpuset", emulator_cpuset);
    w.End();
  }
  w.End();
}

void WriteKib(XmlWriter& w, const char* name, uint64_t kib) {
  w.Start(name);
  w.Attr("unit", "KiB");
  w.Text(name, StrCat(kib));
  w.End();
}

void WriteMemory(XmlWriter& w, const Domain& d) {
  WriteKib(w, "memory", d.memory_kib);
  if (d.current_memory_kib != 0) WriteKib(w, "currentMemory", d.current_memory_kib);
  if (d.hard_limit_kib != 0) {
    w.Start("memtune");
    WriteKib(w, "hard_limit", d.hard_limit_kib);
    w.End();
  }
  if (d.hugepage_kib == 0 && !d.memory_locked) return;
  w.Start("memoryBacking");
  if (d.hugepage_kib != 0) {
    w.Start("hugepages");
    w.Start("page");
    w.Attr("size", StrCat(d.hugepage_kib));
    w.Attr("unit", "KiB");
    w.End();
    w.End();
  }
  if (d.memory_locked) w.Empty("locked");
  w.End();
}

void WriteSysinfo(XmlWriter& w, const Domain& d) {
  if (d.smbios_system.empty()) return;
  w.Start("sysinfo");
  w.Attr("type", "smbios");
  w.Start("system");
  for (const auto& [name, value] : d.smbios_system) {
    w.Start("entry");
    w.Attr("name", name);
    w.Text("entry", value);
    w.End();
  }
  w.End();
  w.End();
}

void WriteMemballoon(XmlWriter& w, const Domain& d) {
  w.Start("memballoon");
  w.Attr("model", d.memory_balloon ? "virtio" : "none");
  if (d.memory_balloon && d.balloon_stats_period_s > 0) {
    w.Start("stats");
    w.Attr("period", StrCat(d.balloon_stats_period_s));
    w.End();
  }
  w.End();
}

bool AnyBootOrder(const Domain& d) {
  return std::any_of(d.disks.begin(), d.disks.end(),
                     [](const Disk& disk) { return disk.boot_order > 0; });
}

void WriteOs(XmlWriter& w, const Domain& d) {
  w.Start("os");
  if (d.uefi) w.Attr("firmware", "efi");
  w.Start("type");
  w.Attr("arch", d.arch);
  w.AttrIfSet("machine", d.machine);  // Empty: libvirt's default machine.
  w.Text("type", "hvm");
  w.End();
  if (d.uefi && d.secure_boot) {
    w.Start("loader");
    w.Attr("secure", "yes");
    w.End();
  }
  if (!d.kernel.empty()) {
    w.Element("kernel", d.kernel);
    w.ElementIfSet("initrd", d.initrd);
    w.ElementIfSet("cmdline", d.cmdline);
  } else if (!AnyBootOrder(d)) {
    // libvirt refuses <os><boot> together with per-disk boot orders.
    w.Start("boot");
    w.Attr("dev", "hd");
    w.End();
  }
  if (!d.smbios_system.empty()) {
    w.Start("smbios");
    w.Attr("mode", "sysinfo");
    w.End();
  }
  w.End();
}

void WriteStateOn(XmlWriter& w, const char* name, bool on) {
  if (!on) return;
  w.Start(name);
  w.Attr("state", "on");
  w.End();
}

void WriteFeatures(XmlWriter& w, const Domain& d) {
  w.Start("features");
  if (d.acpi) w.Empty("acpi");
  if (d.apic) w.Empty("apic");
  const HyperV& h = d.hyperv;
  if (h.Any()) {
    w.Start("hyperv");
    w.Attr("mode", "custom");
    WriteStateOn(w, "relaxed", h.relaxed);
    WriteStateOn(w, "vapic", h.vapic);
    if (h.spinlock_retries > 0) {
      w.Start("spinlocks");
      w.Attr("state", "on");
      w.Attr("retries", StrCat(h.spinlock_retries));
      w.End();
    }
    WriteStateOn(w, "vpindex", h.vpindex);
    WriteStateOn(w, "runtime", h.runtime);
    WriteStateOn(w, "synic", h.synic);
    WriteStateOn(w, "stimer", h.stimer);
    WriteStateOn(w, "reset", h.reset);
    WriteStateOn(w, "frequencies", h.frequencies);
    WriteStateOn(w, "tlbflush", h.tlbflush);
    WriteStateOn(w, "ipi", h.ipi);
    w.End();
  }
  WriteStateOn(w, "smm", d.smm);
  w.End();
}

void WriteCpu(XmlWriter& w, const Domain& d) {
  const bool topology = d.sockets > 0;
  if (d.cpu_mode.empty() && d.cpu_features.empty() && !topology && d.numa.empty()) return;
  w.Start("cpu");
  w.AttrIfSet("mode", d.cpu_mode);
  if (!d.cpu_model.empty()) {
    w.Start("model");
    w.Attr("fallback", "forbid");
    w.Text("model", d.cpu_model);
    w.End();
  }
  if (topology) {
    w.Start("topology");
    w.Attr("sockets", StrCat(d.sockets));
    w.Attr("cores", StrCat(d.cores));
    w.Attr("threads", StrCat(d.threads));
    w.End();
  }
  for (const CpuFeature& feature : d.cpu_features) {
    w.Start("feature");
    w.Attr("policy", feature.policy);
    w.Attr("name", feature.name);
    w.End();
  }
  if (!d.numa.empty()) {
    w.Start("numa");
    for (const NumaCell& cell : d.numa) {
      w.Start("cell");
      w.Attr("id", StrCat(cell.id));
      w.Attr("cpus", cell.cpus);
      w.Attr("memory", StrCat(cell.memory_kib));
      w.Attr("unit", "KiB");
      w.End();
    }
    w.End();
  }
  w.End();
}

void WriteClock(XmlWriter& w, const Domain& d) {
  w.Start("clock");
  w.Attr("offset", d.clock_offset);
  for (const Timer& timer : d.timers) {
    w.Start("timer");
    w.Attr("name", timer.name);
    w.AttrIfSet("tickpolicy", timer.tick_policy);
    if (timer.present >= 0) w.Attr("present", timer.present ? "yes" : "no");
    w.End();
  }
  w.End();
}

void WriteDisk(XmlWriter& w, const Disk& disk) {
  const bool block = disk.type == "block";
  w.Start("disk");
  w.Attr("type", block ? "block" : "file");
  w.Attr("device", "disk");
  w.Start("driver");
  w.Attr("name", "qemu");
  w.Attr("type", disk.format);
  w.AttrIfSet("cache", disk.cache);
  w.AttrIfSet("io", disk.io);
  w.End();
  w.Start("source");
  w.Attr(block ? "dev" : "file", disk.source_file);
  w.End();
  w.Start("target");
  w.Attr("dev", disk.target_dev);
  w.Attr("bus", disk.bus);
  w.End();
  if (disk.boot_order > 0) {
    w.Start("boot");
    w.Attr("order", StrCat(disk.boot_order));
    w.End();
  }
  if (disk.read_only) w.Empty("readonly");
  w.ElementIfSet("serial", disk.serial);
  w.End();
}

void WriteController(XmlWriter& w, const Controller& c) {
  w.Start("controller");
  w.Attr("type", c.type);
  if (c.index >= 0) w.Attr("index", StrCat(c.index));
  w.AttrIfSet("model", c.model);
  if (!c.alias.empty()) {
    w.Start("alias");
    w.Attr("name", c.alias);
    w.End();
  }
  w.End();
}

// A serial port on a unix socket QEMU listens on (mode "bind").
void WriteSerial(XmlWriter& w, const std::string& socket, int port) {
  w.Start("serial");
  w.Attr("type", "unix");
  w.Start("source");
  w.Attr("mode", "bind");
  w.Attr("path", socket);
  w.End();
  w.Start("target");
  w.Attr("port", StrCat(port));
  w.End();
  w.End();
}

void WriteGuestAgentChannel(XmlWriter& w, const std::string& name) {
  // No source path: libvirt picks one under its own directory and connects
  // to it when the guest opens the port.
  w.Start("channel");
  w.Attr("type", "unix");
  w.Start("source");
  w.Attr("mode", "bind");
  w.End();
  w.Start("target");
  w.Attr("type", "virtio");
  w.Attr("name", name);
  w.End();
  w.End();
}

void WriteVnc(XmlWriter& w, const std::string& socket) {
  w.Start("graphics");
  w.Attr("type", "vnc");
  w.Attr("socket", socket);
  w.End();
  w.Start("video");
  w.Start("model");
  w.Attr("type", "vga");
  w.End();
  w.End();
}

void WriteOtherDevices(XmlWriter& w, const Domain& d) {
  if (!d.watchdog_model.empty()) {
    w.Start("watchdog");
    w.Attr("model", d.watchdog_model);
    w.AttrIfSet("action", d.watchdog_action);
    w.End();
  }
  WriteMemballoon(w, d);
  if (d.rng) {
    w.Start("rng");
    w.Attr("model", "virtio");
    w.Start("backend");
    w.Attr("model", "random");
    w.Text("backend", "/dev/urandom");
    w.End();
    w.End();
  }
  if (!d.tpm_version.empty()) {
    w.Start("tpm");
    w.Attr("model", d.tpm_model);
    w.Start("backend");
    w.Attr("type", "emulator");
    w.Attr("version", d.tpm_version);
    w.End();
    w.End();
  }
}

}  // namespace

absl::StatusOr<std::string> WriteDomainXml(const Domain& d) {
  InitLibxml();
  XmlWriter w;
  w.Start("domain");
  w.Attr("type", d.type);
  w.Element("name", d.name);
  w.ElementIfSet("uuid", d.uuid);
  w.ElementIfSet("title", d.title);
  WriteMetadata(w, d.metadata, d.nics);
  WriteMemory(w, d);
  WriteVcpus(w, d);
  WriteSysinfo(w, d);
  WriteOs(w, d);
  WriteFeatures(w, d);
  WriteCpu(w, d);
  WriteClock(w, d);
  // Whatever ends the guest ends the container; the kubelet restarts it.
  w.Element("on_poweroff", "destroy");
  w.Element("on_reboot", d.on_reboot);
  w.Element("on_crash", "destroy");
  w.Start("devices");
  w.ElementIfSet("emulator", d.emulator);  // Empty: libvirt's default emulator.
  for (const Disk& disk : d.disks) WriteDisk(w, disk);
  for (const Controller& controller : d.controllers) WriteController(w, controller);
  if (!d.console_socket.empty()) WriteSerial(w, d.console_socket, 0);
  for (size_t i = 0; i < d.extra_serial_sockets.size(); ++i) {
    WriteSerial(w, d.extra_serial_sockets[i], static_cast<int>(i) + 1);
  }
  if (!d.guest_agent_channel.empty()) WriteGuestAgentChannel(w, d.guest_agent_channel);
  if (!d.vnc_socket.empty()) WriteVnc(w, d.vnc_socket);
  WriteOtherDevices(w, d);
  w.End();  // devices
  w.End();  // domain
  return w.Finish();
}

}  // namespace vmlet::vmdriver::libvirt
