// The event payload codec: what is written reads back, the stored layout stays the one older
// files hold (a change to it needs a schema version), and foreign payloads are refused.
#include "server/core/event_payload.h"

#include "gtest/gtest.h"

namespace matbert {
namespace {

EventRecord Stored(const char* kind, std::string payload) { return {1, 2, kind, payload}; }

TEST(EventPayload, EachKindRoundTrips) {
  const StateEvent state{JobState::kRetrying, 2, "rank 1 exited with code 1; retry 1 of 3"};
  const std::optional<StateEvent> s =
      DecodeStateEvent(Stored(kStateEventKind, EncodePayload(state)));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, state.state);
  EXPECT_EQ(s->attempt, 2);
  EXPECT_EQ(s->reason, state.reason);

  const MetricsEvent metrics{3, {"eval", 500, {{"eval_rmse", 0.125}, {"baseline_als", 0.5}}}};
  const std::optional<MetricsEvent> m =
      DecodeMetricsEvent(Stored(kMetricsEventKind, EncodePayload(metrics)));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->attempt, 3);
  EXPECT_EQ(m->record, metrics.record);

  const CheckpointEvent checkpoint{1, 500, "checkpoints/step-0000500"};
  const std::optional<CheckpointEvent> c =
      DecodeCheckpointEvent(Stored(kCheckpointEventKind, EncodePayload(checkpoint)));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->step, 500);
  EXPECT_EQ(c->path, checkpoint.path);
}

TEST(EventPayload, TheStoredLayoutIsSchemaVersionTwos) {
  // Files written by earlier versions hold exactly these texts; they must keep reading.
  EXPECT_EQ(EncodePayload(StateEvent{JobState::kQueued, 0, "submitted"}),
            R"({"attempt":0,"reason":"submitted","state":"QUEUED"})");
  EXPECT_EQ(EncodePayload(MetricsEvent{1, {"train", 10, {{"loss", 0.5}}}}),
            R"({"attempt":1,"kind":"train","step":10,"values":{"loss":0.5}})");
  EXPECT_EQ(EncodePayload(CheckpointEvent{1, 10, "checkpoints/step-0000010"}),
            R"({"attempt":1,"path":"checkpoints/step-0000010","step":10})");
}

TEST(EventPayload, OtherKindsAndBrokenPayloadsAreRefused) {
  const std::string metrics = EncodePayload(MetricsEvent{1, {"train", 1, {}}});
  EXPECT_FALSE(DecodeStateEvent(Stored(kMetricsEventKind, metrics)));
  EXPECT_FALSE(DecodeMetricsEvent(Stored(kMetricsEventKind, "{not json")));
  EXPECT_FALSE(DecodeMetricsEvent(Stored(kMetricsEventKind, "[1]")));
  EXPECT_FALSE(DecodeStateEvent(Stored(kStateEventKind, R"({"state":"DANCING"})")));
  EXPECT_FALSE(DecodeCheckpointEvent(Stored(kStateEventKind, "{}")));
}

}  // namespace
}  // namespace matbert
