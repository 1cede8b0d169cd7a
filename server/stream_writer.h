// A server-streaming call served by its own thread: the body writes messages one by one
// (each Write waits until gRPC has taken the previous one) and returns the final status.
// Used for WatchJob, StreamLogs and DownloadCheckpoint, whose bodies wait on events, poll
// log files or read checkpoint files.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace matbert {

template <typename Message>
class StreamWriter : public grpc::ServerWriteReactor<Message> {
 public:
  using Body = std::function<grpc::Status(StreamWriter*)>;

  // Starts the body at once; the reactor deletes itself when the call is done.
  static StreamWriter* Start(Body body) { return new StreamWriter(std::move(body)); }

  // Sends one message; false once the client has gone (the body should then return).
  bool Write(const Message& message) {
    std::unique_lock<std::mutex> lock(mu_);
    if (cancelled_) return false;
    writing_ = true;
    this->StartWrite(&message);
    cv_.wait(lock, [this] { return !writing_; });
    return write_ok_ && !cancelled_;
  }

  // Waits until `wake` is called (via Wake()), the client cancels, or the timeout passes.
  // Returns false if the client has cancelled.
  bool WaitForWake(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return woken_ || cancelled_; });
    woken_ = false;
    return !cancelled_;
  }
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }

 private:
  explicit StreamWriter(Body body) {
    thread_ = std::thread([this, body = std::move(body)] { this->Finish(body(this)); });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  void OnDone() override {
    thread_.join();  // the body has returned: Finish was its last act
    delete this;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false, write_ok_ = true, cancelled_ = false, woken_ = false;
  std::thread thread_;
};

}  // namespace matbert
