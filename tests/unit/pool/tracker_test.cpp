// The request tracker against scripted server answers: simple and extended protocol, pipelines, errors that
// skip to Sync, COPY in both directions, and pgwarden's own swallowed, synthetic and replaced answers.
#include "pgw/pool/tracker.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using pgw::pool::Answer;
using pgw::pool::Request;
using pgw::pool::Tracker;
using Bytes = std::vector<std::uint8_t>;

const Bytes idle{'I'};
const Bytes in_tx{'T'};
const Bytes close_complete{'3', 0, 0, 0, 4};
const Bytes parse_complete{'1', 0, 0, 0, 4};

struct Script {
  Tracker t;
  Bytes due;
  std::vector<std::uint64_t> failed;
  Tracker::Verdict feed(char type, const Bytes& body = {}) {
    return t.on_message(type, pgw::protocol::Bytes(body.data(), body.size()), due, failed);
  }
};

TEST(Tracker, SimpleQueryIsCleanAfterReadyForQuery) {
  Script r;
  r.t.push(Request::query);
  EXPECT_FALSE(r.t.clean());
  for (char c : {'T', 'D', 'D', 'C'}) {
    auto v = r.feed(c);
    EXPECT_TRUE(v.to_client);
    EXPECT_FALSE(v.violation) << c;
  }
  EXPECT_FALSE(r.t.clean());
  auto v = r.feed('Z', idle);
  EXPECT_TRUE(v.ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, OpenTransactionIsNotClean) {
  Script r;
  r.t.push(Request::query);
  r.feed('C');
  r.feed('Z', in_tx);
  EXPECT_TRUE(r.t.idle());
  EXPECT_FALSE(r.t.clean());
  r.t.push(Request::query);
  r.feed('C');
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, ExtendedProtocolPipeline) {
  Script r;
  r.t.push(Request::parse);
  for (int i = 0; i < 3; ++i) {
    r.t.push(Request::bind);
    r.t.push(Request::describe_portal);
    r.t.push(Request::execute);
  }
  r.t.push(Request::sync);
  EXPECT_FALSE(r.feed('1').violation);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(r.feed('2').violation);
    EXPECT_FALSE(r.feed('T').violation);
    EXPECT_FALSE(r.feed('D').violation);
    EXPECT_FALSE(r.feed('C').violation);
    EXPECT_FALSE(r.t.clean());
  }
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, DescribeStatementTakesParameterDescriptionThenRowsOrNoData) {
  Script r;
  r.t.push(Request::describe_statement);
  r.t.push(Request::describe_statement);
  r.t.push(Request::sync);
  EXPECT_FALSE(r.feed('t').violation);
  EXPECT_FALSE(r.feed('T').violation);
  EXPECT_FALSE(r.feed('t').violation);
  EXPECT_FALSE(r.feed('n').violation);
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, PortalSuspendedEndsAnExecute) {
  Script r;
  r.t.push(Request::execute);
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  r.feed('D');
  EXPECT_FALSE(r.feed('s').violation);
  r.feed('D');
  EXPECT_FALSE(r.feed('C').violation);
  EXPECT_TRUE(r.feed('Z', idle).ready);
}

TEST(Tracker, ErrorInExtendedProtocolSkipsToSyncAndReportsFailedTags) {
  Script r;
  r.t.push(Request::parse, Answer::forward, 7);
  r.t.push(Request::bind);
  r.t.push(Request::parse, Answer::swallow, 9);  // skipped by the server: its statement is never created
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  auto v = r.feed('E');
  EXPECT_TRUE(v.to_client);
  EXPECT_EQ(r.failed, (std::vector<std::uint64_t>{7, 9}));
  EXPECT_EQ(r.t.pending(), 1u);
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, ExtendedProtocolWithoutSyncIsNotClean) {
  // Parse/Bind/Execute/Flush: everything answered, but the server holds the implicit transaction until a
  // Sync.
  Script r;
  r.t.push(Request::parse);
  r.t.push(Request::bind);
  r.t.push(Request::execute);
  r.feed('1');
  r.feed('2');
  r.feed('C');
  EXPECT_TRUE(r.t.idle());
  EXPECT_TRUE(r.t.sync_owed());
  EXPECT_FALSE(r.t.clean());
  r.t.push(Request::sync);
  EXPECT_FALSE(r.t.sync_owed());
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, QueryEndsTheImplicitTransactionUnlessTheServerSkipsIt) {
  // asyncpg's prepare() is Parse/Describe/Flush; a Query after it commits the implicit transaction.
  Script r;
  r.t.push(Request::parse);
  r.t.push(Request::describe_statement);
  r.feed('1');
  r.feed('t');
  r.feed('n');
  EXPECT_FALSE(r.t.clean());
  r.t.push(Request::query);
  r.feed('I');
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
  // After an error in the extended messages before it, the server discards the Query too.
  r.t.push(Request::execute);
  r.t.push(Request::query);
  r.feed('E');
  EXPECT_TRUE(r.t.idle());
  EXPECT_FALSE(r.t.clean());
  // And one sent once the error came: still discarded, still owing a Sync.
  r.t.push(Request::query);
  EXPECT_TRUE(r.t.sync_owed());
  r.t.push(Request::sync);
  EXPECT_FALSE(r.t.sync_owed());
}

TEST(Tracker, FunctionCallEndsTheImplicitTransaction) {
  Script r;
  r.t.push(Request::parse);
  r.feed('1');
  r.t.push(Request::function_call);
  EXPECT_FALSE(r.t.sync_owed());
  r.feed('V');
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, SuspendedPortalWithoutSyncIsNotClean) {
  Script r;
  r.t.push(Request::execute);
  r.feed('D');
  EXPECT_FALSE(r.feed('s').violation);
  EXPECT_TRUE(r.t.idle());
  EXPECT_FALSE(r.t.clean());
}

TEST(Tracker, ErrorWithoutSyncQueuedKeepsTheConnectionUntilOne) {
  // After the error the server discards everything until a Sync: the connection must not serve anyone else.
  Script r;
  r.t.push(Request::parse, Answer::forward, 3);
  r.t.push(Request::bind);
  r.t.push(Request::execute);
  EXPECT_TRUE(r.feed('E').to_client);
  EXPECT_EQ(r.failed, std::vector<std::uint64_t>{3});
  EXPECT_TRUE(r.t.idle());
  EXPECT_FALSE(r.t.clean());
  r.t.push(Request::sync);
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, SyntheticAnswersSendNothingToTheServer) {
  Script r;
  r.t.push_synthetic(Request::parse, parse_complete);
  r.t.take_due(r.due);
  EXPECT_EQ(r.due, parse_complete);
  EXPECT_FALSE(r.t.sync_owed());
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, QuietRequestHidesItsErrorToo) {
  // pgwarden's Parse and Sync ahead of a rewritten simple-query DEALLOCATE, in an aborted transaction.
  Script r;
  r.t.push(Request::parse, Answer::quiet, 4);
  r.t.push(Request::sync, Answer::quiet);
  r.t.push(Request::query);
  auto v = r.feed('E');
  EXPECT_FALSE(v.to_client);
  EXPECT_TRUE(v.quiet);
  EXPECT_EQ(r.failed, std::vector<std::uint64_t>{4});
  v = r.feed('Z', Bytes{'E'});
  EXPECT_FALSE(v.to_client);
  EXPECT_TRUE(v.quiet);
  v = r.feed('E');
  EXPECT_TRUE(v.to_client);
  EXPECT_FALSE(v.quiet);
  EXPECT_TRUE(r.feed('Z', Bytes{'E'}).to_client);
}

TEST(Tracker, ErrorInSimpleQueryWaitsForReadyForQuery) {
  Script r;
  r.t.push(Request::query);
  r.feed('C');
  EXPECT_TRUE(r.feed('E').to_client);
  EXPECT_EQ(r.t.pending(), 1u);
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, SwallowedRequestHidesEverythingItCauses) {
  Script r;
  r.t.push(Request::query, Answer::swallow);  // pgwarden's SET before the client's own query
  r.t.push(Request::query);
  EXPECT_FALSE(r.feed('S').to_client);  // ParameterStatus caused by the SET
  EXPECT_FALSE(r.feed('N').to_client);
  EXPECT_FALSE(r.feed('C').to_client);
  EXPECT_FALSE(r.feed('Z', idle).to_client);
  EXPECT_TRUE(r.feed('S').to_client);  // now the client's own query
  EXPECT_TRUE(r.feed('C').to_client);
  EXPECT_TRUE(r.feed('Z', idle).to_client);
}

TEST(Tracker, HiddenRequestShowsOnlyItsError) {
  Script r;
  r.t.push(Request::parse, Answer::hidden, 5);  // pgwarden prepares the statement the client's Bind needs
  r.t.push(Request::bind);
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  EXPECT_FALSE(r.feed('1').to_client);
  EXPECT_TRUE(r.feed('2').to_client);
  EXPECT_TRUE(r.feed('C').to_client);
  EXPECT_TRUE(r.feed('Z', idle).to_client);
  r.t.push(Request::parse, Answer::hidden, 6);
  r.t.push(Request::bind);
  r.t.push(Request::sync);
  auto v = r.feed('E');
  EXPECT_TRUE(v.to_client) << "the reason the client's Bind fails";
  EXPECT_EQ(r.failed, std::vector<std::uint64_t>{6});
  EXPECT_TRUE(r.feed('Z', idle).to_client);
}

TEST(Tracker, SyntheticAnswerComesInItsPlace) {
  Script r;
  r.t.push(Request::parse);
  r.t.push_synthetic(Request::close, close_complete);
  r.t.push(Request::sync);
  r.t.take_due(r.due);
  EXPECT_TRUE(r.due.empty()) << "the CloseComplete must wait for the ParseComplete before it";
  EXPECT_TRUE(r.feed('1').to_client);
  EXPECT_TRUE(r.due.empty());
  auto v = r.feed('Z', idle);
  EXPECT_EQ(r.due, close_complete) << "due before the ReadyForQuery";
  EXPECT_TRUE(v.ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, SyntheticAnswerAtTheHeadIsDueAtOnce) {
  Script r;
  r.t.push_synthetic(Request::parse, parse_complete);
  r.t.take_due(r.due);
  EXPECT_EQ(r.due, parse_complete);
  EXPECT_TRUE(r.t.idle());
}

TEST(Tracker, SyntheticAnswersSkippedAfterAnError) {
  Script r;
  r.t.push(Request::bind);
  r.t.push_synthetic(Request::parse, parse_complete);  // would have been skipped by PostgreSQL too
  r.t.push(Request::sync);
  r.feed('E');
  r.feed('Z', idle);
  EXPECT_TRUE(r.due.empty());
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, ReplacedErrorIsPgwardensOwn) {
  Script r;
  const Bytes ours{'E', 0, 0, 0, 5, 0};
  r.t.push_replacing_error(Request::query, ours);
  auto v = r.feed('E');
  ASSERT_EQ(Bytes(v.instead.begin(), v.instead.end()), ours);
  EXPECT_TRUE(r.feed('Z', idle).to_client);
}

TEST(Tracker, ReplacedErrorInExtendedProtocolSurvivesTheSkip) {
  Script r;
  const Bytes ours{'E', 0, 0, 0, 5, 0};
  r.t.push_replacing_error(Request::parse, ours);
  r.t.push(Request::bind);
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  auto v = r.feed('E');
  EXPECT_EQ(Bytes(v.instead.begin(), v.instead.end()), ours);
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, CopyInFromExtendedProtocolIgnoresTheSyncSentBeforeTheData) {
  // libpq: Parse/Bind/Describe/Execute/Sync, then CopyData..., CopyDone, Sync (PQputCopyEnd).
  Script r;
  r.t.push(Request::parse);
  r.t.push(Request::bind);
  r.t.push(Request::describe_portal);
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  r.feed('1');
  r.feed('2');
  r.feed('n');
  auto v = r.feed('G');
  EXPECT_TRUE(v.copy_in_started);
  EXPECT_TRUE(r.t.in_copy_in());
  EXPECT_EQ(r.t.pending(), 1u) << "the Sync the server ignores in copy-in is forgotten";
  r.t.push(Request::copy_marker);
  r.t.push(Request::copy_marker);
  r.t.push(Request::sync);
  EXPECT_FALSE(r.feed('C').violation);
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, CopyInFromExtendedProtocolFailingOwesASync) {
  // The Sync sent with the Execute is ignored in copy-in; after an error in the data the server discards
  // everything until the Sync the client sends after CopyDone or CopyFail.
  Script r;
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  r.feed('G');
  EXPECT_TRUE(r.t.sync_owed());
  r.t.push(Request::copy_marker);
  r.feed('E');
  EXPECT_FALSE(r.t.in_copy());
  EXPECT_TRUE(r.t.idle());
  EXPECT_FALSE(r.t.clean());
  r.t.push(Request::sync);
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, CopyInWithDataSentEagerly) {
  Script r;
  r.t.push(Request::execute);
  r.t.push(Request::sync);
  r.t.push(Request::copy_marker);  // the client did not wait for CopyInResponse
  r.t.push(Request::sync);         // sent after CopyDone: this one is answered
  r.feed('G');
  EXPECT_EQ(r.t.pending(), 2u);
  r.feed('C');
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, CopyInFromSimpleQuery) {
  Script r;
  r.t.push(Request::query);
  r.feed('G');
  r.t.push(Request::copy_marker);
  EXPECT_FALSE(r.t.clean());
  r.feed('C');
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, CopyOut) {
  Script r;
  r.t.push(Request::query);
  EXPECT_FALSE(r.feed('H').violation);
  EXPECT_TRUE(r.t.in_copy());
  for (int i = 0; i < 5; ++i)
    EXPECT_FALSE(r.feed('d').violation);
  EXPECT_FALSE(r.feed('c').violation);
  EXPECT_FALSE(r.feed('C').violation);
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, ErrorDuringCopyInEndsCopy) {
  Script r;
  r.t.push(Request::query);
  r.feed('G');
  r.t.push(Request::copy_marker);
  r.feed('E');
  EXPECT_FALSE(r.t.in_copy());
  r.feed('Z', idle);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, CopyMessagesOutsideCopyAreIgnoredLikePostgresDoes) {
  Script r;
  r.t.push(Request::copy_marker);
  EXPECT_TRUE(r.t.idle());
}

TEST(Tracker, FunctionCall) {
  Script r;
  r.t.push(Request::function_call);
  EXPECT_FALSE(r.feed('V').violation);
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, OutOfPlaceMessagesAreViolations) {
  {
    Script r;
    r.t.push(Request::parse);
    EXPECT_TRUE(r.feed('2').violation);
  }
  {
    Script r;
    r.t.push(Request::parse);
    r.t.push(Request::sync);
    EXPECT_TRUE(r.feed('Z', idle).violation) << "ReadyForQuery before the ParseComplete";
  }
  {
    Script r;
    EXPECT_TRUE(r.feed('C').violation) << "nothing was asked";
  }
  {
    Script r;
    r.t.push(Request::query);
    EXPECT_TRUE(r.feed('d').violation) << "CopyData outside COPY TO";
  }
  {
    Script r;
    r.t.push(Request::query);
    EXPECT_TRUE(r.feed('Z', Bytes{'X'}).violation) << "invalid status";
  }
}

TEST(Tracker, UnsolicitedFatalErrorIsForwarded) {
  Script r;
  auto v = r.feed('E');
  EXPECT_FALSE(v.violation);
  EXPECT_TRUE(v.to_client);
}

TEST(Tracker, ManyPendingRequestsGrowTheRing) {
  Script r;
  for (int i = 0; i < 1000; ++i) {
    r.t.push(Request::bind);
    r.t.push(Request::execute);
  }
  r.t.push(Request::sync);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_FALSE(r.feed('2').violation);
    ASSERT_FALSE(r.feed('C').violation);
  }
  EXPECT_TRUE(r.feed('Z', idle).ready);
  EXPECT_TRUE(r.t.clean());
}

TEST(Tracker, ResetForgetsEverything) {
  Script r;
  r.t.push(Request::query);
  r.feed('G');
  r.t.reset();
  EXPECT_TRUE(r.t.clean());
}

}  // namespace
