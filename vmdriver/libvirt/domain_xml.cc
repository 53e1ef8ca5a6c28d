// The one writer of domain XML. libxml2's xmlTextWriter escapes every
// attribute and text value, so no value can change the document's shape.
#include <libxml/parser.h>
#include <libxml/xmlstring.h>
#include <libxml/xmlwriter.h>

#include <algorithm>
#include <string>
#include <string_view>

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

void WriteMetadata(XmlWriter& w, const DomainMetadata& m) {
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
  w.End();
  w.End();
}

// <vcpu placement="static" current="VCPUS" cpuset="...">MAX</vcpu>, with
// current only when hot-plug has room (MAX > VCPUS); a cpuset also pins the
// emulator threads (<cputune>).
void WriteVcpus(XmlWriter& w, const Domain& d) {
  const int max_vcpus = std::max(d.vcpus, d.max_vcpus);
  w.Start("vcpu");
  w.Attr("placement", "static");
  if (max_vcpus != d.vcpus) w.Attr("current", StrCat(d.vcpus));
  w.AttrIfSet("cpuset", d.cpuset);
  w.Text("vcpu", StrCat(max_vcpus));
  w.End();
  if (!d.cpuset.empty()) {
    w.Start("cputune");
    w.Start("emulatorpin");
    w.Attr("cpuset", d.cpuset);
    w.End();
    w.End();
  }
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

void WriteOs(XmlWriter& w, const Domain& d) {
  w.Start("os");
  w.Start("type");
  w.Attr("arch", d.arch);
  w.AttrIfSet("machine", d.machine);  // Empty: libvirt's default machine.
  w.Text("type", "hvm");
  w.End();
  if (!d.kernel.empty()) {
    w.Element("kernel", d.kernel);
    w.ElementIfSet("initrd", d.initrd);
    w.ElementIfSet("cmdline", d.cmdline);
  } else {
    w.Start("boot");
    w.Attr("dev", "hd");
    w.End();
  }
  w.End();
}

void WriteDisk(XmlWriter& w, const Disk& disk) {
  w.Start("disk");
  w.Attr("type", "file");
  w.Attr("device", "disk");
  w.Start("driver");
  w.Attr("name", "qemu");
  w.Attr("type", disk.format);
  w.End();
  w.Start("source");
  w.Attr("file", disk.source_file);
  w.End();
  w.Start("target");
  w.Attr("dev", disk.target_dev);
  w.Attr("bus", disk.bus);
  w.End();
  if (disk.read_only) w.Empty("readonly");
  w.End();
}

void WriteConsole(XmlWriter& w, const std::string& socket) {
  // QEMU listens on the socket (mode "bind"); vmletd connects and reads.
  w.Start("serial");
  w.Attr("type", "unix");
  w.Start("source");
  w.Attr("mode", "bind");
  w.Attr("path", socket);
  w.End();
  w.Start("target");
  w.Attr("port", "0");
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

}  // namespace

absl::StatusOr<std::string> WriteDomainXml(const Domain& d) {
  InitLibxml();
  XmlWriter w;
  w.Start("domain");
  w.Attr("type", d.type);
  w.Element("name", d.name);
  w.ElementIfSet("uuid", d.uuid);
  w.ElementIfSet("title", d.title);
  WriteMetadata(w, d.metadata);
  w.Start("memory");
  w.Attr("unit", "KiB");
  w.Text("memory", StrCat(d.memory_kib));
  w.End();
  if (d.current_memory_kib != 0) {
    w.Start("currentMemory");
    w.Attr("unit", "KiB");
    w.Text("currentMemory", StrCat(d.current_memory_kib));
    w.End();
  }
  WriteVcpus(w, d);
  WriteOs(w, d);
  w.Start("features");
  w.Empty("acpi");
  w.Empty("apic");
  w.End();
  if (!d.cpu_mode.empty()) {
    w.Start("cpu");
    w.Attr("mode", d.cpu_mode);
    w.End();
  }
  w.Start("clock");
  w.Attr("offset", "utc");
  w.End();
  // Whatever ends the guest ends the container; the kubelet restarts it.
  w.Element("on_poweroff", "destroy");
  w.Element("on_reboot", "restart");
  w.Element("on_crash", "destroy");
  w.Start("devices");
  w.ElementIfSet("emulator", d.emulator);  // Empty: libvirt's default emulator.
  for (const Disk& disk : d.disks) WriteDisk(w, disk);
  if (!d.console_socket.empty()) WriteConsole(w, d.console_socket);
  if (!d.guest_agent_channel.empty()) WriteGuestAgentChannel(w, d.guest_agent_channel);
  WriteMemballoon(w, d);
  w.End();  // devices
  w.End();  // domain
  return w.Finish();
}

}  // namespace vmlet::vmdriver::libvirt
