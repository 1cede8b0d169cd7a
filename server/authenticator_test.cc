#include "server/authenticator.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace matbert {
namespace {

constexpr char kTokens[] =
    "# token                          user   role\n"
    "alice-0123456789abcdef           alice  user\n"
    "\n"
    "  bob-0123456789abcdef0          bob    user   # a comment after the fields\n"
    "root-0123456789abcdef0           ops    admin\n"
    "alice-second-0123456789          alice  user\n";

const std::string kSecret(32, '\x5a');

std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<std::vector<TokenEntry>> parsed = ParseTokensFile(text, "tokens.txt");
  EXPECT_FALSE(parsed.ok()) << text;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(TokensFile, ParsesUsersRolesAndComments) {
  absl::StatusOr<std::vector<TokenEntry>> parsed = ParseTokensFile(kTokens, "tokens.txt");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 4u);
  EXPECT_EQ((*parsed)[1].token, "bob-0123456789abcdef0");
  EXPECT_EQ((*parsed)[1].user, "bob");
  EXPECT_EQ((*parsed)[1].role, Role::kUser);
  EXPECT_EQ((*parsed)[2].user, "ops");
  EXPECT_EQ((*parsed)[2].role, Role::kAdmin);
  EXPECT_EQ((*parsed)[3].user, "alice");  // a second token for one user (rotation)
}

TEST(TokensFile, ErrorsNameTheLineAndTheAllowedValues) {
  EXPECT_EQ(ErrorOf("alice-0123456789abcdef alice\n"),
            "tokens.txt line 1: expected TOKEN USER ROLE, got 2 field(s)");
  EXPECT_EQ(ErrorOf("\nshort alice user\n"),
            "tokens.txt line 2: the token has 5 characters; at least 16 are needed (openssl "
            "rand -hex 16 makes one)");
  EXPECT_EQ(ErrorOf("alice-0123456789abcdef alice owner\n"),
            "tokens.txt line 1: role \"owner\" is not one of user, admin");
  EXPECT_EQ(ErrorOf("alice-0123456789abcdef al/ice user\n"),
            "tokens.txt line 1: user \"al/ice\" must be 1-64 letters, digits, \".\", \"_\" or "
            "\"-\"");
  EXPECT_EQ(ErrorOf("rank:j1:0123456789abcdef alice user\n"),
            "tokens.txt line 1: a token may not start with \"rank:\" (the ranks' credentials do)");
  EXPECT_EQ(ErrorOf("alice-0123456789abcdef alice user\nalice-0123456789abcdef bob user\n"),
            "tokens.txt line 2: this token is already listed on line 1");
  EXPECT_EQ(ErrorOf("alice-0123456789abcdef alice user\nalice-1123456789abcdef alice admin\n"),
            "tokens.txt line 2: user alice is already listed as user; a user has one role");
  EXPECT_EQ(ErrorOf("# nothing but comments\n\n"), "tokens.txt lists no token");
}

TEST(Authenticator, TokensNameTheirUserAndRole) {
  const Authenticator auth(*ParseTokensFile(kTokens, "tokens"), kSecret);
  ASSERT_TRUE(auth.enabled());
  EXPECT_EQ(auth.users(), 3);
  absl::StatusOr<Principal> alice = auth.IdentifyToken("alice-second-0123456789");
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->user, "alice");
  EXPECT_EQ(alice->role, Role::kUser);
  absl::StatusOr<Principal> ops = auth.IdentifyToken("root-0123456789abcdef0");
  ASSERT_TRUE(ops.ok());
  EXPECT_EQ(ops->role, Role::kAdmin);
  for (const char* wrong : {"", "alice-0123456789abcde", "alice-0123456789abcdefX", "alice"}) {
    absl::StatusOr<Principal> p = auth.IdentifyToken(wrong);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << wrong;
  }
}

TEST(Authenticator, WithoutTokensEveryCallerIsTheNamelessAdmin) {
  const Authenticator open;
  EXPECT_FALSE(open.enabled());
  absl::StatusOr<Principal> anyone = open.IdentifyToken("anything");
  ASSERT_TRUE(anyone.ok());
  EXPECT_EQ(anyone->role, Role::kAdmin);
  EXPECT_EQ(anyone->user, "");
  EXPECT_EQ(open.RankCredential("j1"), "");
}

TEST(Authenticator, RankCredentialsAreGoodForTheirOwnJobOnly) {
  const Authenticator auth(*ParseTokensFile(kTokens, "tokens"), kSecret);
  const std::string credential = auth.RankCredential("j1abcd");
  ASSERT_EQ(credential.rfind("rank:j1abcd:", 0), 0u) << credential;
  EXPECT_EQ(credential.size(), std::string("rank:j1abcd:").size() + 64);
  absl::StatusOr<Principal> rank = auth.IdentifyToken(credential);
  ASSERT_TRUE(rank.ok()) << rank.status();
  EXPECT_EQ(rank->role, Role::kRank);
  EXPECT_EQ(rank->job_id, "j1abcd");
  EXPECT_TRUE(MayReportFor(*rank, "j1abcd").ok());
  EXPECT_EQ(MayReportFor(*rank, "j2wxyz").message(),
            "this rank credential is for job j1abcd, not job j2wxyz");
  EXPECT_EQ(MayUseClientApi(*rank).code(), absl::StatusCode::kPermissionDenied);
  // Claiming another job with this job's MAC, or a MAC one digit off, is not a credential.
  const std::string mac = credential.substr(std::string("rank:j1abcd:").size());
  EXPECT_EQ(auth.IdentifyToken("rank:j2wxyz:" + mac).status().code(),
            absl::StatusCode::kUnauthenticated);
  std::string flipped = credential;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  EXPECT_EQ(auth.IdentifyToken(flipped).status().code(), absl::StatusCode::kUnauthenticated);
  // Another daemon's secret makes other credentials.
  const Authenticator other(*ParseTokensFile(kTokens, "tokens"), std::string(32, '\x01'));
  EXPECT_NE(other.RankCredential("j1abcd"), credential);
  EXPECT_EQ(other.IdentifyToken(credential).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(Authenticator, UsersActOnTheirOwnJobsAdminsOnAll) {
  const Principal alice{"alice", Role::kUser, ""};
  const Principal ops{"ops", Role::kAdmin, ""};
  EXPECT_TRUE(MayActOnJob(alice, "j1", "alice").ok());
  absl::Status denied = MayActOnJob(alice, "j2", "bob");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "job j2 belongs to bob; user alice may act on its own jobs only (an admin on all)");
  EXPECT_EQ(MayActOnJob(alice, "j3", "").message(),
            "job j3 belongs to nobody (submitted without a token); user alice may act on its "
            "own jobs only (an admin on all)");
  EXPECT_TRUE(MayActOnJob(ops, "j2", "bob").ok());
  EXPECT_TRUE(MayReportFor(ops, "j2").ok());
  EXPECT_EQ(MayReportFor(alice, "j1").code(), absl::StatusCode::kPermissionDenied);
}

TEST(RankSecret, MadeOnceWithMode0600AndReadBack) {
  const std::string dir = ::testing::TempDir() + "/rank_secret_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/rank-secret";
  std::filesystem::remove(path);
  absl::StatusOr<std::string> made = LoadOrCreateRankSecret(path);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->size(), 32u);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> again = LoadOrCreateRankSecret(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *made);
  ASSERT_TRUE(WriteFileAtomically(path, "not hex\n").ok());
  absl::StatusOr<std::string> broken = LoadOrCreateRankSecret(path);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(broken.status().message().find(path), std::string::npos);
}

}  // namespace
}  // namespace matbert
