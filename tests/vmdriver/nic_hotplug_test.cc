// The QMP commands that plug a pod's NIC into a paused domain.
#include "vmdriver/libvirt/nic_hotplug.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace vmlet::vmdriver::libvirt {
namespace {

using Json = nlohmann::json;

TEST(NicHotplugTest, NetdevAddUsesTheDescriptorPassedBeforeByName) {
  Json command = Json::parse(NetdevAddCommand(0, "vmlet-tap0"));
  EXPECT_EQ(command["execute"], "netdev_add");
  EXPECT_EQ(command["arguments"]["type"], "tap");
  EXPECT_EQ(command["arguments"]["id"], "vmletnet0");
  EXPECT_EQ(command["arguments"]["fd"], "vmlet-tap0");
}

TEST(NicHotplugTest, NetdevAddOfAMultiQueueNicNamesOneDescriptorPerQueue) {
  Json command = Json::parse(NetdevAddCommand(1, {"vmlet-tap1", "vmlet-tap1q1", "vmlet-tap1q2"}));
  EXPECT_EQ(command["arguments"]["id"], "vmletnet1");
  EXPECT_EQ(command["arguments"]["fds"], "vmlet-tap1:vmlet-tap1q1:vmlet-tap1q2");
  EXPECT_FALSE(command["arguments"].contains("fd"));
}

TEST(NicHotplugTest, DeviceAddGivesTheMacAndAFixedSlotFromTheTop) {
  NetworkInterface nic{
      .netns_path = "/run/vmlet/netns/x", .tap = "tap0", .mac = "0a:58:0a:fa:09:0a"};
  Json first = Json::parse(DeviceAddCommand(0, nic));
  EXPECT_EQ(first["execute"], "device_add");
  EXPECT_EQ(first["arguments"]["driver"], "virtio-net-pci");
  EXPECT_EQ(first["arguments"]["netdev"], "vmletnet0");
  EXPECT_EQ(first["arguments"]["mac"], "0a:58:0a:fa:09:0a");
  EXPECT_EQ(first["arguments"]["addr"], "0x1e");
  Json second = Json::parse(DeviceAddCommand(1, nic));
  EXPECT_EQ(second["arguments"]["id"], "vmletnic1");
  EXPECT_EQ(second["arguments"]["addr"], "0x1d");
}

TEST(NicHotplugTest, ValuesAreJsonEscaped) {
  NetworkInterface nic{.mac = "\"},{\"execute\":\"quit"};
  Json command = Json::parse(DeviceAddCommand(0, nic));
  EXPECT_EQ(command["arguments"]["mac"], "\"},{\"execute\":\"quit");
  EXPECT_EQ(command["execute"], "device_add");
}

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
