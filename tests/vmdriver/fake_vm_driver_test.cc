#include "vmdriver/fake_vm_driver.h"

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::vmdriver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kVm[] = "aaaa000000000000000000000000000000000000000000000000000000000001";
constexpr char kOtherVm[] = "bbbb000000000000000000000000000000000000000000000000000000000002";

std::string Message(const absl::Status& status) { return std::string(status.message()); }

VmConfig ConfigFor(const std::string& id) {
  VmConfig config;
  config.id = id;
  config.sandbox_id = "5a4d000000000000000000000000000000000000000000000000000000000000";
  config.name = "default_web_nginx";
  config.vcpus = 2;
  config.memory_bytes = 768 * kMiB;
  config.image = "docker.io/library/nginx:1.25";
  config.log_path = "/var/log/pods/default_web/nginx/0.log";
  return config;
}

// A persisting FakeVmDriver whose events are recorded in `events_`.
class FakeVmDriverTest : public ::testing::Test {
 protected:
  FakeVmDriverTest() { Restart(); }

  // Replaces the driver by a new one over the same directory, as a restart
  // of vmletd would.
  void Restart() {
    driver_ = std::make_unique<FakeVmDriver>(PersistDir());
    absl::Status status = driver_->Load();
    ASSERT_TRUE(status.ok()) << status;
    driver_->Watch([this](const VmEvent& event) {
      std::lock_guard lock(events_mu_);
      events_.push_back(event);
    });
  }

  std::string PersistDir() const { return dir_.path() + "/vms"; }

  void CreateVm(const std::string& id) {
    absl::Status status = driver_->Create(ConfigFor(id));
    ASSERT_TRUE(status.ok()) << status;
  }

  void CreateAndStartVm(const std::string& id) {
    CreateVm(id);
    absl::Status status = driver_->Start(id);
    ASSERT_TRUE(status.ok()) << status;
  }

  VmInfo InspectOk(std::string_view id) {
    absl::StatusOr<VmInfo> info = driver_->Inspect(id);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : VmInfo{};
  }

  std::vector<VmEvent> Events() {
    std::lock_guard lock(events_mu_);
    return events_;
  }

  void ClearEvents() {
    std::lock_guard lock(events_mu_);
    events_.clear();
  }

  testing::TempDir dir_;
  std::unique_ptr<FakeVmDriver> driver_;

 private:
  std::mutex events_mu_;
  std::vector<VmEvent> events_;
};

// Whether two VmInfos agree on everything a caller can observe.
void ExpectSameInfo(const VmInfo& actual, const VmInfo& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.state, expected.state);
  EXPECT_EQ(actual.started_at, expected.started_at);
  EXPECT_EQ(actual.finished_at, expected.finished_at);
  EXPECT_EQ(actual.exit_code, expected.exit_code);
  EXPECT_EQ(actual.reason, expected.reason);
  EXPECT_EQ(actual.message, expected.message);
}

void ExpectSameConfig(const VmConfig& actual, const VmConfig& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.sandbox_id, expected.sandbox_id);
  EXPECT_EQ(actual.name, expected.name);
  EXPECT_EQ(actual.vcpus, expected.vcpus);
  EXPECT_EQ(actual.memory_bytes, expected.memory_bytes);
  EXPECT_EQ(actual.image, expected.image);
  EXPECT_EQ(actual.log_path, expected.log_path);
}

TEST_F(FakeVmDriverTest, IsNamedFakeAndReachable) {
  EXPECT_EQ(driver_->Name(), "fake");
  EXPECT_TRUE(driver_->CheckReachable().ok());
}

TEST_F(FakeVmDriverTest, CreateMakesACreatedVmThatRemembersItsConfig) {
  CreateVm(kVm);
  VmInfo info = InspectOk(kVm);
  EXPECT_EQ(info.id, kVm);
  EXPECT_EQ(info.state, VmState::kCreated);
  EXPECT_EQ(info.started_at, 0);
  EXPECT_EQ(info.finished_at, 0);
  absl::StatusOr<VmConfig> config = driver_->ConfigOf(kVm);
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectSameConfig(*config, ConfigFor(kVm));
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(FakeVmDriverTest, StartThenStopEndsWithACompletedExit) {
  CreateVm(kVm);
  ASSERT_TRUE(driver_->Start(kVm).ok());
  VmInfo running = InspectOk(kVm);
  EXPECT_EQ(running.state, VmState::kRunning);
  EXPECT_GT(running.started_at, 0);

  absl::Status status = driver_->Stop(kVm, absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status;
  VmInfo exited = InspectOk(kVm);
  EXPECT_EQ(exited.state, VmState::kExited);
  EXPECT_EQ(exited.exit_code, 0);
  EXPECT_EQ(exited.reason, "Completed");
  EXPECT_EQ(exited.started_at, running.started_at);
  EXPECT_GE(exited.finished_at, exited.started_at);
}

TEST_F(FakeVmDriverTest, DestroyEndsARunningVmAsKilled) {
  CreateAndStartVm(kVm);
  absl::Status status = driver_->Destroy(kVm);
  ASSERT_TRUE(status.ok()) << status;
  VmInfo info = InspectOk(kVm);
  EXPECT_EQ(info.state, VmState::kExited);
  EXPECT_EQ(info.exit_code, 137);
  EXPECT_EQ(info.reason, "Killed");
  EXPECT_GE(info.finished_at, info.started_at);
}

TEST_F(FakeVmDriverTest, StopAndDestroyEndACreatedVm) {
  struct Case {
    std::string name;
    std::function<absl::Status(FakeVmDriver&)> end;
    int32_t exit_code;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"Stop", [](FakeVmDriver& d) { return d.Stop(kVm, absl::Seconds(1)); }, 0, "Completed"},
      {"Destroy", [](FakeVmDriver& d) { return d.Destroy(kVm); }, 137, "Killed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(driver_->Remove(kVm).ok());
    CreateVm(kVm);
    absl::Status status = c.end(*driver_);
    ASSERT_TRUE(status.ok()) << status;
    VmInfo info = InspectOk(kVm);
    EXPECT_EQ(info.state, VmState::kExited);
    EXPECT_EQ(info.exit_code, c.exit_code);
    EXPECT_EQ(info.reason, c.reason);
  }
}

TEST_F(FakeVmDriverTest, StopAndDestroyLeaveAnExitedVmAsItIs) {
  CreateAndStartVm(kVm);
  ASSERT_TRUE(driver_->SimulateExit(kVm, 3, "Error").ok());
  VmInfo exited = InspectOk(kVm);
  ClearEvents();
  EXPECT_TRUE(driver_->Stop(kVm, absl::Seconds(1)).ok());
  EXPECT_TRUE(driver_->Destroy(kVm).ok());
  ExpectSameInfo(InspectOk(kVm), exited);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(FakeVmDriverTest, StartRefusesAVmThatIsNotCreated) {
  CreateAndStartVm(kVm);
  absl::Status status = driver_->Start(kVm);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("running"));

  ASSERT_TRUE(driver_->Stop(kVm, absl::Seconds(1)).ok());
  status = driver_->Start(kVm);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Message(status), HasSubstr("exited"));
  EXPECT_EQ(InspectOk(kVm).state, VmState::kExited);
}

TEST_F(FakeVmDriverTest, CreateRefusesAnIdThatExistsAndKeepsTheFirstVm) {
  CreateVm(kVm);
  VmConfig other = ConfigFor(kVm);
  other.name = "someone_else";
  absl::Status status = driver_->Create(other);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(Message(status), HasSubstr(kVm));
  absl::StatusOr<VmConfig> config = driver_->ConfigOf(kVm);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "default_web_nginx");
}

TEST_F(FakeVmDriverTest, OperationsOnAnUnknownVmReturnNotFound) {
  struct Case {
    std::string name;
    std::function<absl::Status(FakeVmDriver&)> call;
  };
  const std::vector<Case> cases = {
      {"Start", [](FakeVmDriver& d) { return d.Start(kVm); }},
      {"Stop", [](FakeVmDriver& d) { return d.Stop(kVm, absl::Seconds(1)); }},
      {"Destroy", [](FakeVmDriver& d) { return d.Destroy(kVm); }},
      {"Inspect", [](FakeVmDriver& d) { return d.Inspect(kVm).status(); }},
      {"ConfigOf", [](FakeVmDriver& d) { return d.ConfigOf(kVm).status(); }},
      {"SimulateExit", [](FakeVmDriver& d) { return d.SimulateExit(kVm, 1, "Error"); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = c.call(*driver_);
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
    EXPECT_THAT(Message(status), HasSubstr(kVm));
  }
}

TEST_F(FakeVmDriverTest, RemoveOfAnUnknownVmIsOk) { EXPECT_TRUE(driver_->Remove(kVm).ok()); }

TEST_F(FakeVmDriverTest, RemoveDeletesAVmInAnyState) {
  CreateVm(kVm);
  CreateAndStartVm(kOtherVm);
  for (const char* id : {kVm, kOtherVm}) {
    SCOPED_TRACE(id);
    absl::Status status = driver_->Remove(id);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(driver_->Inspect(id).status().code(), absl::StatusCode::kNotFound);
  }
  absl::StatusOr<std::vector<VmInfo>> infos = driver_->List();
  ASSERT_TRUE(infos.ok()) << infos.status();
  EXPECT_THAT(*infos, IsEmpty());
}

TEST_F(FakeVmDriverTest, ListReturnsEveryVm) {
  CreateVm(kOtherVm);
  CreateAndStartVm(kVm);
  absl::StatusOr<std::vector<VmInfo>> infos = driver_->List();
  ASSERT_TRUE(infos.ok()) << infos.status();
  ASSERT_EQ(infos->size(), 2u);
  EXPECT_EQ((*infos)[0].id, kVm);
  EXPECT_EQ((*infos)[0].state, VmState::kRunning);
  EXPECT_EQ((*infos)[1].id, kOtherVm);
  EXPECT_EQ((*infos)[1].state, VmState::kCreated);
}

TEST_F(FakeVmDriverTest, DeliversAnEventForEveryChangeOfState) {
  struct Case {
    std::string name;
    // Brings kVm from running to exited.
    std::function<absl::Status(FakeVmDriver&)> end;
    int32_t exit_code;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"Stop", [](FakeVmDriver& d) { return d.Stop(kVm, absl::Seconds(1)); }, 0, "Completed"},
      {"Destroy", [](FakeVmDriver& d) { return d.Destroy(kVm); }, 137, "Killed"},
      {"SimulateExit", [](FakeVmDriver& d) { return d.SimulateExit(kVm, 3, "Error"); }, 3, "Error"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(driver_->Remove(kVm).ok());
    ClearEvents();
    CreateAndStartVm(kVm);
    absl::Status status = c.end(*driver_);
    ASSERT_TRUE(status.ok()) << status;
    std::vector<VmEvent> events = Events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].info.id, kVm);
    EXPECT_EQ(events[0].info.state, VmState::kRunning);
    EXPECT_EQ(events[1].info.id, kVm);
    EXPECT_EQ(events[1].info.state, VmState::kExited);
    EXPECT_EQ(events[1].info.exit_code, c.exit_code);
    EXPECT_EQ(events[1].info.reason, c.reason);
    // The event carries what Inspect reports afterwards.
    ExpectSameInfo(events[1].info, InspectOk(kVm));
  }
}

TEST_F(FakeVmDriverTest, SimulateExitRefusesAVmThatIsNotRunning) {
  CreateVm(kVm);
  absl::Status status = driver_->SimulateExit(kVm, 1, "Error");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(InspectOk(kVm).state, VmState::kCreated);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(FakeVmDriverTest, FailNextFailsExactlyOneCallAndChangesNothing) {
  struct Case {
    std::string operation;
    bool start_first;  // Whether kVm runs before the call (else it is only created).
    std::function<absl::Status(FakeVmDriver&)> call;
  };
  const std::vector<Case> cases = {
      {"Create", false, [](FakeVmDriver& d) { return d.Create(ConfigFor(kOtherVm)); }},
      {"Start", false, [](FakeVmDriver& d) { return d.Start(kVm); }},
      {"Stop", true, [](FakeVmDriver& d) { return d.Stop(kVm, absl::Seconds(1)); }},
      {"Destroy", true, [](FakeVmDriver& d) { return d.Destroy(kVm); }},
      {"Remove", true, [](FakeVmDriver& d) { return d.Remove(kVm); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.operation);
    ASSERT_TRUE(driver_->Remove(kVm).ok());
    ASSERT_TRUE(driver_->Remove(kOtherVm).ok());
    if (c.start_first) {
      CreateAndStartVm(kVm);
    } else {
      CreateVm(kVm);
    }
    VmInfo before = InspectOk(kVm);
    ClearEvents();

    driver_->FailNext(c.operation, absl::InternalError("injected"));
    absl::Status status = c.call(*driver_);
    EXPECT_EQ(status.code(), absl::StatusCode::kInternal) << status;
    EXPECT_EQ(Message(status), "injected");
    ExpectSameInfo(InspectOk(kVm), before);
    EXPECT_EQ(driver_->Inspect(kOtherVm).status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(Events(), IsEmpty());
    // What is on disk did not change either.
    FakeVmDriver reader(PersistDir());
    ASSERT_TRUE(reader.Load().ok());
    absl::StatusOr<VmInfo> on_disk = reader.Inspect(kVm);
    ASSERT_TRUE(on_disk.ok()) << on_disk.status();
    ExpectSameInfo(*on_disk, before);
    EXPECT_EQ(reader.Inspect(kOtherVm).status().code(), absl::StatusCode::kNotFound);

    // The failure was used up: the same call now succeeds.
    status = c.call(*driver_);
    EXPECT_TRUE(status.ok()) << status;
  }
}

TEST_F(FakeVmDriverTest, FailNextAffectsOnlyTheNamedOperation) {
  CreateVm(kVm);
  driver_->FailNext("Stop", absl::InternalError("injected"));
  EXPECT_TRUE(driver_->Start(kVm).ok());
  EXPECT_EQ(driver_->Stop(kVm, absl::Seconds(1)).code(), absl::StatusCode::kInternal);
}

TEST_F(FakeVmDriverTest, AnUnreachableEngineFailsEveryOperationUntilReset) {
  CreateVm(kVm);
  struct Case {
    std::string name;
    std::function<absl::Status(FakeVmDriver&)> call;
  };
  const std::vector<Case> cases = {
      {"CheckReachable", [](FakeVmDriver& d) { return d.CheckReachable(); }},
      {"Create", [](FakeVmDriver& d) { return d.Create(ConfigFor(kOtherVm)); }},
      {"Start", [](FakeVmDriver& d) { return d.Start(kVm); }},
      {"Stop", [](FakeVmDriver& d) { return d.Stop(kVm, absl::Seconds(1)); }},
      {"Destroy", [](FakeVmDriver& d) { return d.Destroy(kVm); }},
      {"Remove", [](FakeVmDriver& d) { return d.Remove(kVm); }},
      {"Inspect", [](FakeVmDriver& d) { return d.Inspect(kVm).status(); }},
      {"List", [](FakeVmDriver& d) { return d.List().status(); }},
  };
  driver_->SetReachable(absl::UnavailableError("libvirtd is gone"));
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = c.call(*driver_);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_EQ(Message(status), "libvirtd is gone");
  }
  driver_->SetReachable(absl::OkStatus());
  EXPECT_TRUE(driver_->CheckReachable().ok());
  EXPECT_EQ(InspectOk(kVm).state, VmState::kCreated);
  EXPECT_EQ(driver_->Inspect(kOtherVm).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(FakeVmDriverTest, ANewDriverOnTheSameDirectorySeesTheSameVms) {
  CreateVm(kVm);
  CreateAndStartVm(kOtherVm);
  ASSERT_TRUE(driver_->SimulateExit(kOtherVm, 3, "Error").ok());
  std::vector<VmInfo> before = {InspectOk(kVm), InspectOk(kOtherVm)};

  Restart();

  absl::StatusOr<std::vector<VmInfo>> after = driver_->List();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 2u);
  ExpectSameInfo((*after)[0], before[0]);
  ExpectSameInfo((*after)[1], before[1]);
  for (const char* id : {kVm, kOtherVm}) {
    SCOPED_TRACE(id);
    absl::StatusOr<VmConfig> config = driver_->ConfigOf(id);
    ASSERT_TRUE(config.ok()) << config.status();
    ExpectSameConfig(*config, ConfigFor(id));
  }
  // The reloaded VMs go on with their lives.
  EXPECT_TRUE(driver_->Start(kVm).ok());
  EXPECT_EQ(InspectOk(kVm).state, VmState::kRunning);
}

TEST_F(FakeVmDriverTest, ARemovedVmStaysRemovedAfterARestart) {
  CreateVm(kVm);
  CreateVm(kOtherVm);
  ASSERT_TRUE(driver_->Remove(kVm).ok());
  Restart();
  EXPECT_EQ(driver_->Inspect(kVm).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(InspectOk(kOtherVm).state, VmState::kCreated);
}

TEST_F(FakeVmDriverTest, LoadSkipsTemporaryFilesOfAnInterruptedWrite) {
  CreateVm(kVm);
  ASSERT_TRUE(
      WriteFileAtomically(PersistDir() + "/" + kOtherVm + ".tmp-0123456789ab", "half a rec").ok());
  Restart();
  absl::StatusOr<std::vector<VmInfo>> infos = driver_->List();
  ASSERT_TRUE(infos.ok()) << infos.status();
  ASSERT_EQ(infos->size(), 1u);
  EXPECT_EQ((*infos)[0].id, kVm);
}

TEST_F(FakeVmDriverTest, LoadRefusesAMalformedRecordNamingIt) {
  ASSERT_TRUE(MakeDirs(PersistDir()).ok());
  ASSERT_TRUE(WriteFileAtomically(PersistDir() + "/" + kVm, "id=x\nvcpus=many\n").ok());
  FakeVmDriver driver(PersistDir());
  absl::Status status = driver.Load();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(Message(status), HasSubstr(kVm));
}

TEST(FakeVmDriverInMemoryTest, WorksWithoutADirectory) {
  FakeVmDriver driver;
  ASSERT_TRUE(driver.Load().ok());
  ASSERT_TRUE(driver.Create(ConfigFor(kVm)).ok());
  ASSERT_TRUE(driver.Start(kVm).ok());
  ASSERT_TRUE(driver.Stop(kVm, absl::Seconds(1)).ok());
  absl::StatusOr<VmInfo> info = driver.Inspect(kVm);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state, VmState::kExited);
  EXPECT_TRUE(driver.Remove(kVm).ok());
}

TEST(UnavailableVmDriverTest, AnswersUnavailableWithItsReasonToEverything) {
  UnavailableVmDriver driver("libvirt: cannot connect to qemu:///system");
  struct Case {
    std::string name;
    std::function<absl::Status()> call;
  };
  const std::vector<Case> cases = {
      {"CheckReachable", [&] { return driver.CheckReachable(); }},
      {"Create", [&] { return driver.Create(ConfigFor(kVm)); }},
      {"Start", [&] { return driver.Start(kVm); }},
      {"Stop", [&] { return driver.Stop(kVm, absl::Seconds(1)); }},
      {"Destroy", [&] { return driver.Destroy(kVm); }},
      {"Remove", [&] { return driver.Remove(kVm); }},
      {"Inspect", [&] { return driver.Inspect(kVm).status(); }},
      {"List", [&] { return driver.List().status(); }},
      {"CollectStats", [&] { return driver.CollectStats().status(); }},
      {"UpdateResources", [&] { return driver.UpdateResources(kVm, {.vcpus = 1}); }},
  };
  EXPECT_EQ(driver.Name(), "unavailable");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = c.call();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_EQ(Message(status), "libvirt: cannot connect to qemu:///system");
  }
}

TEST(VmStateNameTest, NamesEveryState) {
  EXPECT_EQ(VmStateName(VmState::kCreated), "created");
  EXPECT_EQ(VmStateName(VmState::kRunning), "running");
  EXPECT_EQ(VmStateName(VmState::kExited), "exited");
}

TEST_F(FakeVmDriverTest, ExecEchoesItsArgumentsWithoutAHandler) {
  CreateAndStartVm(kVm);
  absl::StatusOr<ExecResult> result = driver_->Exec(kVm, {"echo", "", "hi"}, absl::Seconds(1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_data, "echo  hi\n");
  EXPECT_EQ(result->exit_code, 0);
}

TEST_F(FakeVmDriverTest, ExecAnswersWhatTheHandlerSays) {
  CreateAndStartVm(kVm);
  std::vector<std::string> seen;
  driver_->SetExecHandler([&seen](std::string_view id, const std::vector<std::string>& argv,
                                  absl::Duration timeout) -> absl::StatusOr<ExecResult> {
    seen = argv;
    seen.push_back(std::string(id));
    seen.push_back(absl::FormatDuration(timeout));
    return ExecResult{.exit_code = 7, .stdout_data = "", .stderr_data = "no\n"};
  });
  absl::StatusOr<ExecResult> result = driver_->Exec(kVm, {"false"}, absl::Seconds(3));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 7);
  EXPECT_EQ(result->stderr_data, "no\n");
  EXPECT_THAT(seen, ElementsAre("false", kVm, "3s"));
}

TEST_F(FakeVmDriverTest, ExecNeedsAKnownRunningVmAndACommand) {
  EXPECT_EQ(driver_->Exec(kVm, {"true"}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
  CreateVm(kVm);
  absl::Status status = driver_->Exec(kVm, {"true"}, absl::Seconds(1)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr("created"));
  ASSERT_TRUE(driver_->Start(kVm).ok());
  EXPECT_EQ(driver_->Exec(kVm, {}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  driver_->FailNext("Exec", absl::DeadlineExceededError("slow"));
  EXPECT_EQ(driver_->Exec(kVm, {"true"}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(driver_->Exec(kVm, {"true"}, absl::Seconds(1)).ok());
}

// The stats of `id` in `all`, or a failure.
VmStats StatsOf(const std::vector<VmStats>& all, const std::string& id) {
  for (const VmStats& stats : all) {
    if (stats.id == id) return stats;
  }
  ADD_FAILURE() << "no stats for " << id;
  return {};
}

TEST_F(FakeVmDriverTest, CollectStatsReportsRunningVmsWithMovingFigures) {
  CreateAndStartVm(kVm);
  CreateVm(kOtherVm);  // Created, not running: no stats.
  EXPECT_EQ(driver_->bulk_stats_queries(), 0u);
  absl::StatusOr<std::vector<VmStats>> first = driver_->CollectStats();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 1u);
  const VmStats a = StatsOf(*first, kVm);
  EXPECT_GT(a.timestamp_ns, 0);
  EXPECT_EQ(a.vcpus, 2);
  EXPECT_EQ(a.memory_bytes, static_cast<uint64_t>(768 * kMiB));
  EXPECT_GT(a.rss_bytes, 0u);
  EXPECT_TRUE(a.guest_memory_reported);
  EXPECT_EQ(a.guest_total_bytes, static_cast<uint64_t>(768 * kMiB));

  absl::StatusOr<std::vector<VmStats>> second = driver_->CollectStats();
  ASSERT_TRUE(second.ok()) << second.status();
  const VmStats b = StatsOf(*second, kVm);
  EXPECT_EQ(b.cpu_time_ns, a.cpu_time_ns + 10'000'000);
  EXPECT_GE(b.timestamp_ns, a.timestamp_ns);
  EXPECT_EQ(driver_->bulk_stats_queries(), 2u);

  ASSERT_TRUE(driver_->Stop(kVm, absl::Seconds(1)).ok());
  absl::StatusOr<std::vector<VmStats>> stopped = driver_->CollectStats();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_THAT(*stopped, IsEmpty());
}

TEST_F(FakeVmDriverTest, SetStatsFixesWhatCollectStatsReturns) {
  CreateAndStartVm(kVm);
  EXPECT_EQ(driver_->SetStats(kOtherVm, VmStats{}).code(), absl::StatusCode::kNotFound);
  VmStats fixed{.id = "ignored", .timestamp_ns = 123, .cpu_time_ns = 5, .rx_bytes = 77};
  ASSERT_TRUE(driver_->SetStats(kVm, fixed).ok());
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::vector<VmStats>> all = driver_->CollectStats();
    ASSERT_TRUE(all.ok()) << all.status();
    const VmStats stats = StatsOf(*all, kVm);
    EXPECT_EQ(stats.timestamp_ns, 123);
    EXPECT_EQ(stats.cpu_time_ns, 5u);
    EXPECT_EQ(stats.rx_bytes, 77u);
  }
}

TEST_F(FakeVmDriverTest, CollectStatsFailsAsInjectedOrWhenUnreachable) {
  CreateAndStartVm(kVm);
  driver_->FailNext("CollectStats", absl::UnavailableError("engine gone"));
  EXPECT_EQ(driver_->CollectStats().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(driver_->CollectStats().ok());
  driver_->SetReachable(absl::UnavailableError("down"));
  EXPECT_EQ(driver_->CollectStats().status().code(), absl::StatusCode::kUnavailable);
}

VmConfig GrowableConfig(const std::string& id) {
  VmConfig config = ConfigFor(id);
  config.vcpus = 1;
  config.max_vcpus = 2;
  config.memory_bytes = 128 * kMiB;
  config.max_memory_bytes = 192 * kMiB;
  return config;
}

TEST_F(FakeVmDriverTest, UpdateResourcesRecordsTheNewValuesAcrossARestart) {
  ASSERT_TRUE(driver_->Create(GrowableConfig(kVm)).ok());
  ASSERT_TRUE(driver_->Start(kVm).ok());
  absl::Status status = driver_->UpdateResources(
      kVm, {.vcpus = 2, .memory_bytes = 96 * kMiB, .cpuset = std::vector<int>{0}});
  ASSERT_TRUE(status.ok()) << status;
  Restart();
  absl::StatusOr<VmConfig> config = driver_->ConfigOf(kVm);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vcpus, 2);
  EXPECT_EQ(config->memory_bytes, 96 * kMiB);
  EXPECT_THAT(config->cpuset, ElementsAre(0));
  EXPECT_EQ(config->max_vcpus, 2);
  EXPECT_EQ(config->max_memory_bytes, 192 * kMiB);
  absl::StatusOr<std::vector<VmStats>> all = driver_->CollectStats();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(StatsOf(*all, kVm).vcpus, 2);
  EXPECT_EQ(StatsOf(*all, kVm).memory_bytes, static_cast<uint64_t>(96 * kMiB));
  // Unset fields stay; an empty cpuset means all CPUs.
  ASSERT_TRUE(driver_->UpdateResources(kVm, {.cpuset = std::vector<int>{}}).ok());
  config = driver_->ConfigOf(kVm);
  EXPECT_EQ(config->vcpus, 2);
  EXPECT_THAT(config->cpuset, IsEmpty());
}

TEST_F(FakeVmDriverTest, UpdateResourcesLimitsAreTheStartValuesWithoutMaxima) {
  CreateAndStartVm(kVm);  // 2 vCPUs, 768 MiB, no maxima.
  ASSERT_TRUE(driver_->UpdateResources(kVm, {.vcpus = 1, .memory_bytes = 512 * kMiB}).ok());
  // Down and up again to the start value, never beyond it.
  ASSERT_TRUE(driver_->UpdateResources(kVm, {.vcpus = 2, .memory_bytes = 768 * kMiB}).ok());
  absl::Status status = driver_->UpdateResources(kVm, {.vcpus = 3});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Message(status),
            "vcpus: 3 is more than the 2 vCPUs this VM was started with room for (max_vcpus)");
}

struct UpdateCase {
  std::string name;
  VmResourceUpdate update;
  absl::StatusCode code;
  std::string message;  // A part of it.
};

TEST_F(FakeVmDriverTest, UpdateResourcesChecksEverythingFirstAndChangesNothingOnFailure) {
  ASSERT_TRUE(driver_->Create(GrowableConfig(kVm)).ok());
  ASSERT_TRUE(driver_->Start(kVm).ok());
  const std::vector<UpdateCase> cases = {
      {"TooManyVcpus",
       {.vcpus = 3},
       absl::StatusCode::kOutOfRange,
       "vcpus: 3 is more than the 2 vCPUs this VM was started with room for (max_vcpus)"},
      {"NoVcpus",
       {.vcpus = 0},
       absl::StatusCode::kOutOfRange,
       "vcpus: 0 is less than 1: expected 1 to 2 (max_vcpus)"},
      {"TooMuchMemory",
       {.vcpus = 2, .memory_bytes = 256 * kMiB},
       absl::StatusCode::kOutOfRange,
       "memory_bytes: 268435456 is more than the 201326592 bytes (192 MiB) this VM was started "
       "with room for (max_memory_bytes)"},
      {"TooLittleMemory",
       {.memory_bytes = kMiB},
       absl::StatusCode::kOutOfRange,
       "memory_bytes: 1048576 is less than 16777216 (16 MiB): expected 16777216 to 201326592 "
       "(max_memory_bytes)"},
      {"CpuNotOnTheHost",
       {.vcpus = 2, .memory_bytes = 64 * kMiB, .cpuset = std::vector<int>{0, 4096}},
       absl::StatusCode::kInvalidArgument,
       "cpuset: CPU 4096 is not on this host: expected CPUs 0"},
      {"NegativeCpu",
       {.cpuset = std::vector<int>{-1}},
       absl::StatusCode::kInvalidArgument,
       "cpuset: CPU -1 is not on this host"},
      {"CpuTwice",
       {.cpuset = std::vector<int>{0, 0}},
       absl::StatusCode::kInvalidArgument,
       "cpuset: CPU 0 is listed twice: expected each CPU once"},
  };
  for (const UpdateCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = driver_->UpdateResources(kVm, c.update);
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_THAT(Message(status), HasSubstr(c.message));
    absl::StatusOr<VmConfig> config = driver_->ConfigOf(kVm);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->vcpus, 1);
    EXPECT_EQ(config->memory_bytes, 128 * kMiB);
    EXPECT_THAT(config->cpuset, IsEmpty());
  }
}

TEST_F(FakeVmDriverTest, UpdateResourcesNeedsAKnownRunningVm) {
  EXPECT_EQ(driver_->UpdateResources(kVm, {.vcpus = 1}).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(driver_->Create(GrowableConfig(kVm)).ok());
  absl::Status created = driver_->UpdateResources(kVm, {.vcpus = 1});
  EXPECT_EQ(created.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(created), HasSubstr("created, not running"));
  ASSERT_TRUE(driver_->Start(kVm).ok());
  driver_->FailNext("UpdateResources", absl::InternalError("engine refused"));
  EXPECT_EQ(driver_->UpdateResources(kVm, {.vcpus = 2}).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(driver_->ConfigOf(kVm)->vcpus, 1);
  EXPECT_TRUE(driver_->UpdateResources(kVm, {.vcpus = 2}).ok());
  ASSERT_TRUE(driver_->Stop(kVm, absl::Seconds(1)).ok());
  EXPECT_EQ(driver_->UpdateResources(kVm, {.vcpus = 1}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FakeVmDriverTest, LoadsRecordsWrittenBeforeResourcesExisted) {
  ASSERT_TRUE(MakeDirs(PersistDir()).ok());
  ASSERT_TRUE(WriteFileAtomically(PersistDir() + "/" + kVm,
                                  std::string("id=") + kVm +
                                      "\nvcpus=2\nmemory_bytes=268435456\nstate=1\n"
                                      "started_at=1\nfinished_at=0\nexit_code=0\n")
                  .ok());
  Restart();
  absl::StatusOr<VmConfig> config = driver_->ConfigOf(kVm);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_vcpus, 0);
  EXPECT_THAT(config->cpuset, IsEmpty());
  EXPECT_TRUE(driver_->UpdateResources(kVm, {.vcpus = 1}).ok());
  EXPECT_TRUE(driver_->UpdateResources(kVm, {.vcpus = 2}).ok());
  EXPECT_EQ(driver_->UpdateResources(kVm, {.vcpus = 3}).code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace vmlet::vmdriver
