// The request queue of a server connection: which answer belongs to which request, and whose it is.
#include "pgw/pool/tracker.hpp"

namespace pgw::pool {

using namespace protocol;

void Tracker::reset() noexcept {
  head_ = 0;
  count_ = 0;
  side_.clear();
  status_ = backend::TransactionStatus::idle;
  copy_in_ = copy_out_ = sync_owed_ = skipping_ = false;
}

void Tracker::push_entry(const Entry& e) {
  if (count_ == ring_.size()) {
    std::vector<Entry> bigger(ring_.size() * 2);
    for (std::size_t i = 0; i < count_; ++i)
      bigger[i] = at(i);
    ring_ = std::move(bigger);
    head_ = 0;
  }
  ring_[(head_ + count_) & (ring_.size() - 1)] = e;
  ++count_;
}

void Tracker::pop() noexcept {
  head_ = (head_ + 1) & (ring_.size() - 1);
  if (--count_ == 0) head_ = 0;
}

void Tracker::erase_at(std::size_t i) noexcept {
  for (std::size_t j = i; j + 1 < count_; ++j)
    at(j) = at(j + 1);
  if (--count_ == 0) head_ = 0;
}

std::uint32_t Tracker::store(std::span<const std::uint8_t> bytes) {
  // Bytes a Verdict pointed at stay valid until the next push; with nothing pending the buffer starts over.
  if (count_ == 0) side_.clear();
  auto at_offset = static_cast<std::uint32_t>(side_.size());
  side_.insert(side_.end(), bytes.begin(), bytes.end());
  return at_offset;
}

void Tracker::note_sent(Request r) noexcept {
  switch (r) {
    case Request::parse:
    case Request::bind:
    case Request::describe_statement:
    case Request::describe_portal:
    case Request::execute:
    case Request::close:
      sync_owed_ = true;
      break;
    case Request::sync:
      sync_owed_ = skipping_ = false;
      break;
    case Request::query:
    case Request::function_call:
      // Either ends the implicit transaction too, unless the server is discarding everything until a Sync.
      if (!skipping_) sync_owed_ = false;
      break;
    default:
      break;
  }
}

void Tracker::push(Request r, Answer a, std::uint64_t tag) {
  if (r == Request::copy_marker) {
    // A copy message only matters behind a request whose CopyInResponse may still come.
    if (copy_in_ || count_ == 0 || at(count_ - 1).request == Request::copy_marker) return;
  }
  if (a != Answer::synthetic) note_sent(r);
  push_entry(Entry{r, a, 0, 0, tag});
}

void Tracker::push_synthetic(Request r, std::span<const std::uint8_t> answer, std::uint64_t tag) {
  Entry e{r, Answer::synthetic, 0, 0, tag};
  e.bytes_at = store(answer);
  e.bytes_len = static_cast<std::uint32_t>(answer.size());
  push_entry(e);
}

void Tracker::push_replacing_error(Request r, std::span<const std::uint8_t> error) {
  note_sent(r);
  Entry e{r, Answer::replace_error, 0, 0, 0};
  e.bytes_at = store(error);
  e.bytes_len = static_cast<std::uint32_t>(error.size());
  push_entry(e);
}

void Tracker::drain_synthetic(std::vector<std::uint8_t>& due) {
  while (count_ > 0) {
    const Entry& h = at(0);
    if (h.request == Request::copy_marker) {
      pop();
    } else if (h.answer == Answer::synthetic) {
      auto b = bytes_of(h);
      due.insert(due.end(), b.begin(), b.end());
      pop();
    } else {
      break;
    }
  }
}

void Tracker::take_due(std::vector<std::uint8_t>& due) {
  drain_synthetic(due);
}

Tracker::Verdict Tracker::on_message(char type, Bytes body, std::vector<std::uint8_t>& due,
                                     std::vector<std::uint64_t>& failed_tags) {
  Verdict v;
  drain_synthetic(due);
  auto answer = [&](const Entry& e) {
    if (e.answer == Answer::swallow || e.answer == Answer::hidden || e.answer == Answer::quiet)
      v.to_client = false;
    v.quiet = e.answer == Answer::quiet;
  };
  auto violation = [&](const char* why) {
    v.violation = true;
    v.why = why;
    return v;
  };
  // Asynchronous messages answer nothing; during pgwarden's own request they are pgwarden's too.
  if (type == backend::notice_response || type == backend::notification_response ||
      type == backend::parameter_status) {
    if (count_ > 0 && at(0).answer == Answer::swallow) v.to_client = false;
    return v;
  }
  if (count_ == 0) {
    // A FATAL ErrorResponse before the server closes (shutdown, terminate): the client must see it.
    if (type == backend::error_response) return v;
    return violation("the server sent a message no request asked for");
  }
  Entry& h = at(0);
  switch (type) {
    case backend::parse_complete:
      if (h.request != Request::parse) return violation("ParseComplete without a Parse");
      answer(h);
      pop();
      return v;
    case backend::bind_complete:
      if (h.request != Request::bind) return violation("BindComplete without a Bind");
      answer(h);
      pop();
      return v;
    case backend::close_complete:
      if (h.request != Request::close) return violation("CloseComplete without a Close");
      answer(h);
      pop();
      return v;
    case backend::parameter_description:
      if (h.request != Request::describe_statement)
        return violation("ParameterDescription without a Describe");
      answer(h);
      return v;
    case backend::row_description:
      answer(h);
      if (h.request == Request::describe_statement || h.request == Request::describe_portal) {
        pop();
      } else if (h.request != Request::query) {
        return violation("RowDescription out of place");
      }
      return v;
    case backend::no_data:
      if (h.request != Request::describe_statement && h.request != Request::describe_portal) {
        return violation("NoData without a Describe");
      }
      answer(h);
      pop();
      return v;
    case backend::data_row:
      if (h.request != Request::execute && h.request != Request::query)
        return violation("DataRow out of place");
      answer(h);
      return v;
    case backend::command_complete:
    case backend::empty_query_response:
    case backend::portal_suspended:
      answer(h);
      copy_in_ = copy_out_ = false;
      if (h.request == Request::execute) {
        pop();
      } else if (h.request != Request::query || type == backend::portal_suspended) {
        return violation("command result out of place");
      }
      return v;
    case backend::copy_in_response: {
      if (h.request != Request::execute && h.request != Request::query)
        return violation("CopyInResponse out of place");
      answer(h);
      copy_in_ = true;
      v.copy_in_started = true;
      // In copy-in the server ignores Sync and Flush until CopyDone or CopyFail (copyfromparse.c): a Sync the
      // client sent after this Execute and before its first copy message will never be answered, and the
      // COPY's extended-protocol transaction ends only at a Sync sent after it.
      for (std::size_t i = 1; i < count_;) {
        Request r = at(i).request;
        if (r == Request::copy_marker) {
          erase_at(i);
          break;
        }
        if (r == Request::sync) {
          erase_at(i);
          continue;
        }
        ++i;
      }
      if (h.request == Request::execute) {
        bool sync_queued = false;
        for (std::size_t i = 1; i < count_ && !sync_queued; ++i)
          sync_queued = at(i).request == Request::sync;
        if (!sync_queued) sync_owed_ = true;
      }
      return v;
    }
    case backend::copy_out_response:
      if (h.request != Request::execute && h.request != Request::query) {
        return violation("CopyOutResponse out of place");
      }
      answer(h);
      copy_out_ = true;
      return v;
    case backend::copy_data:
    case backend::copy_done:
      if (!copy_out_) return violation("copy data from the server outside COPY TO");
      answer(h);
      if (type == backend::copy_done) copy_out_ = false;
      return v;
    case backend::function_call_response:
      if (h.request != Request::function_call)
        return violation("FunctionCallResponse without a FunctionCall");
      answer(h);
      return v;
    case backend::error_response: {
      copy_in_ = copy_out_ = false;
      if (h.answer == Answer::swallow || h.answer == Answer::quiet) v.to_client = false;
      v.quiet = h.answer == Answer::quiet;
      if (h.answer == Answer::replace_error) v.instead = bytes_of(h);
      if (h.request == Request::query || h.request == Request::function_call || h.request == Request::sync) {
        return v;  // ReadyForQuery follows and ends it
      }
      // Extended protocol: the server discards every message until Sync (55.2.3). Requests up to there fail
      // with this error; their own answers (synthetic ones too) never come, a Query's neither. Without a Sync
      // queued the server keeps discarding: the connection is not clean until one is answered.
      while (count_ > 0 && at(0).request != Request::sync) {
        if (at(0).tag != 0) failed_tags.push_back(at(0).tag);
        pop();
      }
      if (count_ == 0) sync_owed_ = skipping_ = true;
      return v;
    }
    case backend::ready_for_query: {
      backend::ReadyForQuery z;
      if (decode(body, z) != Error::none) return violation("malformed ReadyForQuery");
      while (count_ > 0) {
        Request r = at(0).request;
        if (r == Request::copy_marker) {
          pop();
          continue;
        }
        if (r != Request::sync && r != Request::query && r != Request::function_call) {
          return violation("ReadyForQuery while requests are still unanswered");
        }
        answer(at(0));
        pop();
        while (count_ > 0 && at(0).request == Request::copy_marker)
          pop();
        status_ = z.status;
        copy_in_ = copy_out_ = false;
        v.ready = true;
        return v;
      }
      return violation("ReadyForQuery without a sync point");
    }
    default:
      return violation("unexpected message type from the server");
  }
}

}  // namespace pgw::pool
