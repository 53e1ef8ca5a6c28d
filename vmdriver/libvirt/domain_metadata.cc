// Reading vmlet's <metadata> element back from a domain.
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstring>

#include "vmdriver/libvirt/domain.h"

namespace vmlet::vmdriver::libvirt {

absl::StatusOr<DomainMetadata> ParseDomainMetadata(std::string_view xml) {
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "metadata.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == nullptr) return absl::InvalidArgumentError("vmlet domain metadata is not XML");
  DomainMetadata metadata;
  xmlNodePtr root = xmlDocGetRootElement(doc);
  for (xmlNodePtr node = root != nullptr ? root->children : nullptr; node != nullptr;
       node = node->next) {
    if (node->type != XML_ELEMENT_NODE) continue;
    xmlChar* content = xmlNodeGetContent(node);
    std::string value = content != nullptr ? reinterpret_cast<const char*>(content) : "";
    xmlFree(content);
    const char* name = reinterpret_cast<const char*>(node->name);
    if (std::strcmp(name, "container-id") == 0) metadata.container_id = value;
    if (std::strcmp(name, "sandbox-id") == 0) metadata.sandbox_id = value;
    if (std::strcmp(name, "pod-namespace") == 0) metadata.pod_namespace = value;
    if (std::strcmp(name, "pod-name") == 0) metadata.pod_name = value;
    if (std::strcmp(name, "pod-uid") == 0) metadata.pod_uid = value;
    if (std::strcmp(name, "container-name") == 0) metadata.container_name = value;
    if (std::strcmp(name, "image") == 0) metadata.image = value;
    if (std::strcmp(name, "log-path") == 0) metadata.log_path = value;
    if (std::strcmp(name, "instance") == 0) metadata.instance = value;
    if (std::strcmp(name, "start-paused") == 0) metadata.start_paused = value == "true";
  }
  xmlFreeDoc(doc);
  if (metadata.container_id.empty()) {
    return absl::InvalidArgumentError("vmlet domain metadata has no container-id");
  }
  return metadata;
}

}  // namespace vmlet::vmdriver::libvirt
