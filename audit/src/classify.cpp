// Statement classification for the audit log: token fast path, PostgreSQL 15 grammar, CLOCK cache.
#include "pgw/audit/classify.hpp"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <utility>

namespace pgw::audit {

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Names

constexpr std::size_t kMaxIdentifier = 63;  // NAMEDATALEN - 1: longer names are truncated by the scanner

// PostgreSQL's quote_identifier() character rule (without its keyword check): lower-case letters, digits and
// '_', not starting with a digit, stay bare; anything else is double-quoted.
void append_name_part(std::string& out, std::string_view part) {
  bool bare = !part.empty() && ((part[0] >= 'a' && part[0] <= 'z') || part[0] == '_');
  for (char c : part) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) bare = false;
  }
  if (bare) {
    out += part;
    return;
  }
  out += '"';
  for (char c : part) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void add_object(std::vector<std::string>& objects, std::string name) {
  if (name.empty()) return;
  if (std::find(objects.begin(), objects.end(), name) == objects.end()) objects.push_back(std::move(name));
}

std::string range_var_name(const PgQuery__RangeVar* rv) {
  std::string out;
  if (rv == nullptr || rv->relname == nullptr || rv->relname[0] == '\0') return out;
  for (const char* part : {rv->catalogname, rv->schemaname}) {
    if (part != nullptr && part[0] != '\0') {
      append_name_part(out, part);
      out += '.';
    }
  }
  append_name_part(out, rv->relname);
  return out;
}

// DROP TABLE a.b, COMMENT ON TABLE a.b: a List of String nodes.
std::string list_name(const PgQuery__Node* node) {
  std::string out;
  if (node == nullptr || node->node_case != PG_QUERY__NODE__NODE_LIST) return out;
  const PgQuery__List* list = node->list;
  for (std::size_t i = 0; i < list->n_items; ++i) {
    const PgQuery__Node* item = list->items[i];
    if (item == nullptr || item->node_case != PG_QUERY__NODE__NODE_STRING) return {};
    if (i > 0) out += '.';
    append_name_part(out, item->string->sval);
  }
  return out;
}

bool is_relation_kind(PgQuery__ObjectType t) {
  switch (t) {
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
    case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
    case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
    case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
    case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
    case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Command tags: CreateCommandTag() and AlterObjectTypeCommandTag() of PostgreSQL 15's utility.c.

std::string_view alter_tag(PgQuery__ObjectType t) {
  switch (t) {
    case PG_QUERY__OBJECT_TYPE__OBJECT_AGGREGATE:
      return "ALTER AGGREGATE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_ATTRIBUTE:
      return "ALTER TYPE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_CAST:
      return "ALTER CAST";
    case PG_QUERY__OBJECT_TYPE__OBJECT_COLLATION:
      return "ALTER COLLATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN:
      return "ALTER TABLE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_CONVERSION:
      return "ALTER CONVERSION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_DATABASE:
      return "ALTER DATABASE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_DOMAIN:
    case PG_QUERY__OBJECT_TYPE__OBJECT_DOMCONSTRAINT:
      return "ALTER DOMAIN";
    case PG_QUERY__OBJECT_TYPE__OBJECT_EXTENSION:
      return "ALTER EXTENSION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FDW:
      return "ALTER FOREIGN DATA WRAPPER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_SERVER:
      return "ALTER SERVER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
      return "ALTER FOREIGN TABLE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FUNCTION:
      return "ALTER FUNCTION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
      return "ALTER INDEX";
    case PG_QUERY__OBJECT_TYPE__OBJECT_LANGUAGE:
      return "ALTER LANGUAGE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_LARGEOBJECT:
      return "ALTER LARGE OBJECT";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPCLASS:
      return "ALTER OPERATOR CLASS";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPERATOR:
      return "ALTER OPERATOR";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPFAMILY:
      return "ALTER OPERATOR FAMILY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_POLICY:
      return "ALTER POLICY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_PROCEDURE:
      return "ALTER PROCEDURE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_ROLE:
      return "ALTER ROLE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_ROUTINE:
      return "ALTER ROUTINE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_RULE:
      return "ALTER RULE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
      return "ALTER SCHEMA";
    case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
      return "ALTER SEQUENCE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABCONSTRAINT:
      return "ALTER TABLE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABLESPACE:
      return "ALTER TABLESPACE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TRIGGER:
      return "ALTER TRIGGER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_EVENT_TRIGGER:
      return "ALTER EVENT TRIGGER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSCONFIGURATION:
      return "ALTER TEXT SEARCH CONFIGURATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSDICTIONARY:
      return "ALTER TEXT SEARCH DICTIONARY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSPARSER:
      return "ALTER TEXT SEARCH PARSER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSTEMPLATE:
      return "ALTER TEXT SEARCH TEMPLATE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TYPE:
      return "ALTER TYPE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
      return "ALTER VIEW";
    case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
      return "ALTER MATERIALIZED VIEW";
    case PG_QUERY__OBJECT_TYPE__OBJECT_PUBLICATION:
      return "ALTER PUBLICATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_SUBSCRIPTION:
      return "ALTER SUBSCRIPTION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_STATISTIC_EXT:
      return "ALTER STATISTICS";
    default:
      return "UNKNOWN";
  }
}

std::string_view drop_tag(PgQuery__ObjectType t) {
  switch (t) {
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
      return "DROP TABLE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
      return "DROP SEQUENCE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
      return "DROP VIEW";
    case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
      return "DROP MATERIALIZED VIEW";
    case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
      return "DROP INDEX";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TYPE:
      return "DROP TYPE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_DOMAIN:
      return "DROP DOMAIN";
    case PG_QUERY__OBJECT_TYPE__OBJECT_COLLATION:
      return "DROP COLLATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_CONVERSION:
      return "DROP CONVERSION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
      return "DROP SCHEMA";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSPARSER:
      return "DROP TEXT SEARCH PARSER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSDICTIONARY:
      return "DROP TEXT SEARCH DICTIONARY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSTEMPLATE:
      return "DROP TEXT SEARCH TEMPLATE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSCONFIGURATION:
      return "DROP TEXT SEARCH CONFIGURATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
      return "DROP FOREIGN TABLE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_EXTENSION:
      return "DROP EXTENSION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FUNCTION:
      return "DROP FUNCTION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_PROCEDURE:
      return "DROP PROCEDURE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_ROUTINE:
      return "DROP ROUTINE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_AGGREGATE:
      return "DROP AGGREGATE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPERATOR:
      return "DROP OPERATOR";
    case PG_QUERY__OBJECT_TYPE__OBJECT_LANGUAGE:
      return "DROP LANGUAGE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_CAST:
      return "DROP CAST";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TRIGGER:
      return "DROP TRIGGER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_EVENT_TRIGGER:
      return "DROP EVENT TRIGGER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_RULE:
      return "DROP RULE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FDW:
      return "DROP FOREIGN DATA WRAPPER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_SERVER:
      return "DROP SERVER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPCLASS:
      return "DROP OPERATOR CLASS";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPFAMILY:
      return "DROP OPERATOR FAMILY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_POLICY:
      return "DROP POLICY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TRANSFORM:
      return "DROP TRANSFORM";
    case PG_QUERY__OBJECT_TYPE__OBJECT_ACCESS_METHOD:
      return "DROP ACCESS METHOD";
    case PG_QUERY__OBJECT_TYPE__OBJECT_PUBLICATION:
      return "DROP PUBLICATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_STATISTIC_EXT:
      return "DROP STATISTICS";
    default:
      return "UNKNOWN";
  }
}

std::string_view define_tag(PgQuery__ObjectType t) {
  switch (t) {
    case PG_QUERY__OBJECT_TYPE__OBJECT_AGGREGATE:
      return "CREATE AGGREGATE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_OPERATOR:
      return "CREATE OPERATOR";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TYPE:
      return "CREATE TYPE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSPARSER:
      return "CREATE TEXT SEARCH PARSER";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSDICTIONARY:
      return "CREATE TEXT SEARCH DICTIONARY";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSTEMPLATE:
      return "CREATE TEXT SEARCH TEMPLATE";
    case PG_QUERY__OBJECT_TYPE__OBJECT_TSCONFIGURATION:
      return "CREATE TEXT SEARCH CONFIGURATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_COLLATION:
      return "CREATE COLLATION";
    case PG_QUERY__OBJECT_TYPE__OBJECT_ACCESS_METHOD:
      return "CREATE ACCESS METHOD";
    default:
      return "UNKNOWN";
  }
}

std::string_view transaction_tag(PgQuery__TransactionStmtKind k) {
  switch (k) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
      return "BEGIN";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
      return "START TRANSACTION";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
      return "COMMIT";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
      return "ROLLBACK";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
      return "SAVEPOINT";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
      return "RELEASE";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
      return "PREPARE TRANSACTION";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
      return "COMMIT PREPARED";
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
      return "ROLLBACK PREPARED";
    default:
      return "UNKNOWN";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parse-tree walks

// Every message below `root`, by protobuf-c reflection (only the set member of a oneof), iteratively: trees
// can be deep. `visit` returns false to stop descending into that message.
template <typename Visit>
void walk(const ProtobufCMessage* root, Visit&& visit) {
  std::vector<const ProtobufCMessage*> stack;
  if (root != nullptr) stack.push_back(root);
  while (!stack.empty()) {
    const ProtobufCMessage* msg = stack.back();
    stack.pop_back();
    if (!visit(msg)) continue;
    const ProtobufCMessageDescriptor* d = msg->descriptor;
    const auto* base = reinterpret_cast<const unsigned char*>(msg);
    for (unsigned i = 0; i < d->n_fields; ++i) {
      const ProtobufCFieldDescriptor& f = d->fields[i];
      if (f.type != PROTOBUF_C_TYPE_MESSAGE) continue;
      if ((f.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
        // protobuf-c keeps the oneof case (an enum) at quantifier_offset.
        const auto which = *reinterpret_cast<const std::uint32_t*>(base + f.quantifier_offset);
        if (which != f.id) continue;
      }
      if (f.label == PROTOBUF_C_LABEL_REPEATED) {
        const std::size_t n = *reinterpret_cast<const std::size_t*>(base + f.quantifier_offset);
        const auto* const* items = *reinterpret_cast<const ProtobufCMessage* const* const*>(base + f.offset);
        for (std::size_t k = 0; k < n; ++k) {
          if (items[k] != nullptr) stack.push_back(items[k]);
        }
      } else {
        const auto* sub = *reinterpret_cast<const ProtobufCMessage* const*>(base + f.offset);
        if (sub != nullptr) stack.push_back(sub);
      }
    }
  }
}

// Targets of INSERT/UPDATE/DELETE/MERGE anywhere below `node` (data-modifying WITH, the statement itself).
// Returns whether any was found.
bool collect_dml(const PgQuery__Node* node, std::vector<std::string>& objects) {
  bool found = false;
  walk(&node->base, [&](const ProtobufCMessage* m) {
    const PgQuery__RangeVar* target = nullptr;
    if (m->descriptor == &pg_query__insert_stmt__descriptor) {
      target = reinterpret_cast<const PgQuery__InsertStmt*>(m)->relation;
    } else if (m->descriptor == &pg_query__update_stmt__descriptor) {
      target = reinterpret_cast<const PgQuery__UpdateStmt*>(m)->relation;
    } else if (m->descriptor == &pg_query__delete_stmt__descriptor) {
      target = reinterpret_cast<const PgQuery__DeleteStmt*>(m)->relation;
    } else if (m->descriptor == &pg_query__merge_stmt__descriptor) {
      target = reinterpret_cast<const PgQuery__MergeStmt*>(m)->relation;
    } else {
      return true;
    }
    found = true;
    add_object(objects, range_var_name(target));
    return true;
  });
  return found;
}

// defGetBoolean(): a value it would reject makes the server fail the statement; we count it as true.
bool explain_analyze(const PgQuery__ExplainStmt* e) {
  bool analyze = false;
  for (std::size_t i = 0; i < e->n_options; ++i) {
    const PgQuery__Node* opt = e->options[i];
    if (opt == nullptr || opt->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
    const PgQuery__DefElem* d = opt->def_elem;
    if (d->defname == nullptr || std::strcmp(d->defname, "analyze") != 0) continue;
    const PgQuery__Node* arg = d->arg;
    if (arg == nullptr || arg->node_case == PG_QUERY__NODE__NODE__NOT_SET) {
      analyze = true;
    } else if (arg->node_case == PG_QUERY__NODE__NODE_INTEGER) {
      analyze = arg->integer->ival != 0;
    } else if (arg->node_case == PG_QUERY__NODE__NODE_BOOLEAN) {
      analyze = arg->boolean->boolval != 0;
    } else if (arg->node_case == PG_QUERY__NODE__NODE_STRING && arg->string->sval != nullptr) {
      std::string v = arg->string->sval;
      for (char& c : v)
        c = static_cast<char>((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
      analyze = !(v == "false" || v == "off");
    } else {
      analyze = true;
    }
  }
  return analyze;
}

void set_class(Statement& st, StatementClass cls, std::string_view command) {
  st.cls = cls;
  st.command = command;
}

// SELECT and what may hold one: GetCommandLogLevel's answer plus our superset.
void classify_select(const PgQuery__SelectStmt* s, const PgQuery__Node* node, Statement& st) {
  st.command = "SELECT";
  if (s->into_clause != nullptr) {
    set_class(st, StatementClass::ddl, "SELECT INTO");
    add_object(st.objects, range_var_name(s->into_clause->rel));
    collect_dml(node, st.objects);
    return;
  }
  // INTO on the leftmost arm of a set operation: transformOptionalSelectInto() still makes it CREATE TABLE
  // AS.
  for (const PgQuery__SelectStmt* arm = s->larg; arm != nullptr; arm = arm->larg) {
    if (arm->into_clause != nullptr) {
      set_class(st, StatementClass::ddl, "SELECT INTO");
      st.superset = Superset::select_into_setop;
      add_object(st.objects, range_var_name(arm->into_clause->rel));
      collect_dml(node, st.objects);
      return;
    }
  }
  if (collect_dml(node, st.objects)) {
    st.cls = StatementClass::mod;
    st.superset = Superset::modifying_with;
  }
}

void classify_node(const PgQuery__Node* n, Statement& st);

// The statement inside PREPARE / EXPLAIN ANALYZE: its class, objects, superset reason and EXECUTE effect.
void classify_inner(const PgQuery__Node* inner, Statement& st, std::string_view command) {
  if (inner == nullptr) {
    set_class(st, StatementClass::mod, command);
    return;
  }
  classify_node(inner, st);
  st.command = command;
}

void classify_node(const PgQuery__Node* n, Statement& st) {
  using C = StatementClass;
  switch (n->node_case) {
    case PG_QUERY__NODE__NODE_INSERT_STMT:
      set_class(st, C::mod, "INSERT");
      add_object(st.objects, range_var_name(n->insert_stmt->relation));
      collect_dml(n, st.objects);
      return;
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
      set_class(st, C::mod, "UPDATE");
      add_object(st.objects, range_var_name(n->update_stmt->relation));
      collect_dml(n, st.objects);
      return;
    case PG_QUERY__NODE__NODE_DELETE_STMT:
      set_class(st, C::mod, "DELETE");
      add_object(st.objects, range_var_name(n->delete_stmt->relation));
      collect_dml(n, st.objects);
      return;
    case PG_QUERY__NODE__NODE_MERGE_STMT:
      set_class(st, C::mod, "MERGE");
      add_object(st.objects, range_var_name(n->merge_stmt->relation));
      collect_dml(n, st.objects);
      return;
    case PG_QUERY__NODE__NODE_SELECT_STMT:
      classify_select(n->select_stmt, n, st);
      return;
    case PG_QUERY__NODE__NODE_PLASSIGN_STMT:
      set_class(st, C::none, "SELECT");
      return;
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
      set_class(st, C::none, transaction_tag(n->transaction_stmt->kind));
      return;
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
      set_class(st, C::none, "DECLARE CURSOR");
      return;
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT: {
      const char* name = n->close_portal_stmt->portalname;
      set_class(st, C::none, (name == nullptr || name[0] == '\0') ? "CLOSE CURSOR ALL" : "CLOSE CURSOR");
      return;
    }
    case PG_QUERY__NODE__NODE_FETCH_STMT:
      set_class(st, C::none, n->fetch_stmt->ismove ? "MOVE" : "FETCH");
      // The portal it reads, as the server will look it up: one bound by the extended protocol may hold a
      // write.
      if (n->fetch_stmt->portalname != nullptr) st.prepared_name = n->fetch_stmt->portalname;
      return;
    case PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT:
      set_class(st, C::ddl, "CREATE SCHEMA");
      return;
    case PG_QUERY__NODE__NODE_CREATE_STMT:
      set_class(st, C::ddl, "CREATE TABLE");
      add_object(st.objects, range_var_name(n->create_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_CREATE_FOREIGN_TABLE_STMT:
      set_class(st, C::ddl, "CREATE FOREIGN TABLE");
      if (n->create_foreign_table_stmt->base_stmt != nullptr)
        add_object(st.objects, range_var_name(n->create_foreign_table_stmt->base_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_SPACE_STMT:
      set_class(st, C::ddl, "CREATE TABLESPACE");
      return;
    case PG_QUERY__NODE__NODE_DROP_TABLE_SPACE_STMT:
      set_class(st, C::ddl, "DROP TABLESPACE");
      return;
    case PG_QUERY__NODE__NODE_ALTER_TABLE_SPACE_OPTIONS_STMT:
      set_class(st, C::ddl, "ALTER TABLESPACE");
      return;
    case PG_QUERY__NODE__NODE_CREATE_EXTENSION_STMT:
      set_class(st, C::ddl, "CREATE EXTENSION");
      return;
    case PG_QUERY__NODE__NODE_ALTER_EXTENSION_STMT:
    case PG_QUERY__NODE__NODE_ALTER_EXTENSION_CONTENTS_STMT:
      set_class(st, C::ddl, "ALTER EXTENSION");
      return;
    case PG_QUERY__NODE__NODE_CREATE_FDW_STMT:
      set_class(st, C::ddl, "CREATE FOREIGN DATA WRAPPER");
      return;
    case PG_QUERY__NODE__NODE_ALTER_FDW_STMT:
      set_class(st, C::ddl, "ALTER FOREIGN DATA WRAPPER");
      return;
    case PG_QUERY__NODE__NODE_CREATE_FOREIGN_SERVER_STMT:
      set_class(st, C::ddl, "CREATE SERVER");
      return;
    case PG_QUERY__NODE__NODE_ALTER_FOREIGN_SERVER_STMT:
      set_class(st, C::ddl, "ALTER SERVER");
      return;
    case PG_QUERY__NODE__NODE_CREATE_USER_MAPPING_STMT:
      set_class(st, C::ddl, "CREATE USER MAPPING");
      return;
    case PG_QUERY__NODE__NODE_ALTER_USER_MAPPING_STMT:
      set_class(st, C::ddl, "ALTER USER MAPPING");
      return;
    case PG_QUERY__NODE__NODE_DROP_USER_MAPPING_STMT:
      set_class(st, C::ddl, "DROP USER MAPPING");
      return;
    case PG_QUERY__NODE__NODE_IMPORT_FOREIGN_SCHEMA_STMT:
      set_class(st, C::ddl, "IMPORT FOREIGN SCHEMA");
      return;
    case PG_QUERY__NODE__NODE_DROP_STMT: {
      const PgQuery__DropStmt* d = n->drop_stmt;
      set_class(st, C::ddl, drop_tag(d->remove_type));
      if (is_relation_kind(d->remove_type)) {
        for (std::size_t i = 0; i < d->n_objects; ++i)
          add_object(st.objects, list_name(d->objects[i]));
      }
      return;
    }
    case PG_QUERY__NODE__NODE_TRUNCATE_STMT: {
      set_class(st, C::mod, "TRUNCATE TABLE");
      const PgQuery__TruncateStmt* t = n->truncate_stmt;
      for (std::size_t i = 0; i < t->n_relations; ++i) {
        const PgQuery__Node* r = t->relations[i];
        if (r != nullptr && r->node_case == PG_QUERY__NODE__NODE_RANGE_VAR)
          add_object(st.objects, range_var_name(r->range_var));
      }
      return;
    }
    case PG_QUERY__NODE__NODE_COMMENT_STMT:
      set_class(st, C::ddl, "COMMENT");
      if (is_relation_kind(n->comment_stmt->objtype))
        add_object(st.objects, list_name(n->comment_stmt->object));
      return;
    case PG_QUERY__NODE__NODE_SEC_LABEL_STMT:
      set_class(st, C::ddl, "SECURITY LABEL");
      if (is_relation_kind(n->sec_label_stmt->objtype))
        add_object(st.objects, list_name(n->sec_label_stmt->object));
      return;
    case PG_QUERY__NODE__NODE_COPY_STMT: {
      const PgQuery__CopyStmt* c = n->copy_stmt;
      set_class(st, C::none, "COPY");
      if (c->is_from) {
        st.cls = C::mod;
        add_object(st.objects, range_var_name(c->relation));
      } else if (c->query != nullptr) {
        const auto q = c->query->node_case;
        if (q == PG_QUERY__NODE__NODE_INSERT_STMT || q == PG_QUERY__NODE__NODE_UPDATE_STMT ||
            q == PG_QUERY__NODE__NODE_DELETE_STMT || q == PG_QUERY__NODE__NODE_MERGE_STMT) {
          st.cls = C::mod;
          st.superset = Superset::copy_dml_to;
          collect_dml(c->query, st.objects);
        } else if (collect_dml(c->query, st.objects)) {
          st.cls = C::mod;
          st.superset = Superset::modifying_with;
        }
      }
      return;
    }
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
      classify_inner(n->prepare_stmt->query, st, "PREPARE");
      st.effect = PreparedEffect::prepare;
      st.prepared_name = n->prepare_stmt->name != nullptr ? n->prepare_stmt->name : "";
      return;
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
      // Resolved against the session when the statement is handed out (Classifier::classify).
      set_class(st, C::mod, "EXECUTE");
      st.effect = PreparedEffect::execute;
      st.prepared_name = n->execute_stmt->name != nullptr ? n->execute_stmt->name : "";
      return;
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT: {
      const char* name = n->deallocate_stmt->name;
      if (name == nullptr || name[0] == '\0') {
        set_class(st, C::none, "DEALLOCATE ALL");
        st.effect = PreparedEffect::deallocate_all;
      } else {
        set_class(st, C::none, "DEALLOCATE");
        st.effect = PreparedEffect::deallocate;
        st.prepared_name = name;
      }
      return;
    }
    case PG_QUERY__NODE__NODE_RENAME_STMT: {
      const PgQuery__RenameStmt* r = n->rename_stmt;
      set_class(st, C::ddl,
                alter_tag(r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN ? r->relation_type
                                                                                 : r->rename_type));
      add_object(st.objects, range_var_name(r->relation));
      return;
    }
    case PG_QUERY__NODE__NODE_ALTER_OBJECT_DEPENDS_STMT:
      set_class(st, C::ddl, alter_tag(n->alter_object_depends_stmt->object_type));
      return;
    case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
      set_class(st, C::ddl, alter_tag(n->alter_object_schema_stmt->object_type));
      add_object(st.objects, range_var_name(n->alter_object_schema_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_ALTER_OWNER_STMT:
      set_class(st, C::ddl, alter_tag(n->alter_owner_stmt->object_type));
      add_object(st.objects, range_var_name(n->alter_owner_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_ALTER_OPERATOR_STMT:
      set_class(st, C::ddl, "ALTER OPERATOR");
      return;
    case PG_QUERY__NODE__NODE_ALTER_TYPE_STMT:
      set_class(st, C::ddl, "ALTER TYPE");
      return;
    case PG_QUERY__NODE__NODE_ALTER_TABLE_MOVE_ALL_STMT:
      set_class(st, C::ddl, alter_tag(n->alter_table_move_all_stmt->objtype));
      return;
    case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
      set_class(st, C::ddl, alter_tag(n->alter_table_stmt->objtype));
      add_object(st.objects, range_var_name(n->alter_table_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_ALTER_DOMAIN_STMT:
      set_class(st, C::ddl, "ALTER DOMAIN");
      return;
    case PG_QUERY__NODE__NODE_GRANT_STMT: {
      const PgQuery__GrantStmt* g = n->grant_stmt;
      set_class(st, C::ddl, g->is_grant ? "GRANT" : "REVOKE");
      if (g->targtype == PG_QUERY__GRANT_TARGET_TYPE__ACL_TARGET_OBJECT && is_relation_kind(g->objtype)) {
        for (std::size_t i = 0; i < g->n_objects; ++i) {
          const PgQuery__Node* o = g->objects[i];
          if (o != nullptr && o->node_case == PG_QUERY__NODE__NODE_RANGE_VAR)
            add_object(st.objects, range_var_name(o->range_var));
        }
      }
      return;
    }
    case PG_QUERY__NODE__NODE_GRANT_ROLE_STMT:
      set_class(st, C::ddl, n->grant_role_stmt->is_grant ? "GRANT ROLE" : "REVOKE ROLE");
      return;
    case PG_QUERY__NODE__NODE_ALTER_DEFAULT_PRIVILEGES_STMT:
      set_class(st, C::ddl, "ALTER DEFAULT PRIVILEGES");
      return;
    case PG_QUERY__NODE__NODE_DEFINE_STMT:
      set_class(st, C::ddl, define_tag(n->define_stmt->kind));
      return;
    case PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT:
    case PG_QUERY__NODE__NODE_CREATE_ENUM_STMT:
    case PG_QUERY__NODE__NODE_CREATE_RANGE_STMT:
      set_class(st, C::ddl, "CREATE TYPE");
      return;
    case PG_QUERY__NODE__NODE_ALTER_ENUM_STMT:
      set_class(st, C::ddl, "ALTER TYPE");
      return;
    case PG_QUERY__NODE__NODE_VIEW_STMT:
      set_class(st, C::ddl, "CREATE VIEW");
      add_object(st.objects, range_var_name(n->view_stmt->view));
      return;
    case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
      set_class(st, C::ddl, n->create_function_stmt->is_procedure ? "CREATE PROCEDURE" : "CREATE FUNCTION");
      return;
    case PG_QUERY__NODE__NODE_ALTER_FUNCTION_STMT: {
      const auto t = n->alter_function_stmt->objtype;
      set_class(st, C::ddl,
                t == PG_QUERY__OBJECT_TYPE__OBJECT_FUNCTION    ? "ALTER FUNCTION"
                : t == PG_QUERY__OBJECT_TYPE__OBJECT_PROCEDURE ? "ALTER PROCEDURE"
                : t == PG_QUERY__OBJECT_TYPE__OBJECT_ROUTINE   ? "ALTER ROUTINE"
                                                               : "UNKNOWN");
      return;
    }
    case PG_QUERY__NODE__NODE_INDEX_STMT:
      set_class(st, C::ddl, "CREATE INDEX");
      add_object(st.objects, range_var_name(n->index_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_RULE_STMT:
      set_class(st, C::ddl, "CREATE RULE");
      add_object(st.objects, range_var_name(n->rule_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
      set_class(st, C::ddl, "CREATE SEQUENCE");
      add_object(st.objects, range_var_name(n->create_seq_stmt->sequence));
      return;
    case PG_QUERY__NODE__NODE_ALTER_SEQ_STMT:
      set_class(st, C::ddl, "ALTER SEQUENCE");
      add_object(st.objects, range_var_name(n->alter_seq_stmt->sequence));
      return;
    case PG_QUERY__NODE__NODE_DO_STMT:
      set_class(st, C::routine, "DO");
      return;
    case PG_QUERY__NODE__NODE_CALL_STMT:
      set_class(st, C::routine, "CALL");
      return;
    case PG_QUERY__NODE__NODE_CREATEDB_STMT:
      set_class(st, C::ddl, "CREATE DATABASE");
      return;
    case PG_QUERY__NODE__NODE_ALTER_DATABASE_STMT:
    case PG_QUERY__NODE__NODE_ALTER_DATABASE_REFRESH_COLL_STMT:
    case PG_QUERY__NODE__NODE_ALTER_DATABASE_SET_STMT:
      set_class(st, C::ddl, "ALTER DATABASE");
      return;
    case PG_QUERY__NODE__NODE_DROPDB_STMT:
      set_class(st, C::ddl, "DROP DATABASE");
      return;
    case PG_QUERY__NODE__NODE_NOTIFY_STMT:
      set_class(st, C::none, "NOTIFY");
      return;
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
      set_class(st, C::none, "LISTEN");
      return;
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
      set_class(st, C::none, "UNLISTEN");
      return;
    case PG_QUERY__NODE__NODE_LOAD_STMT:
      set_class(st, C::none, "LOAD");
      return;
    case PG_QUERY__NODE__NODE_CLUSTER_STMT:
      set_class(st, C::ddl, "CLUSTER");
      add_object(st.objects, range_var_name(n->cluster_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
      set_class(st, C::none, n->vacuum_stmt->is_vacuumcmd ? "VACUUM" : "ANALYZE");
      return;
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
      if (explain_analyze(n->explain_stmt)) {
        classify_inner(n->explain_stmt->query, st, "EXPLAIN");
      } else {
        set_class(st, C::none, "EXPLAIN");  // plans without running: nothing is written
      }
      return;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT: {
      const PgQuery__CreateTableAsStmt* c = n->create_table_as_stmt;
      std::string_view tag = "UNKNOWN";
      if (c->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE) {
        tag = c->is_select_into ? "SELECT INTO" : "CREATE TABLE AS";
      } else if (c->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW) {
        tag = "CREATE MATERIALIZED VIEW";
      }
      set_class(st, C::ddl, tag);
      if (c->into != nullptr) add_object(st.objects, range_var_name(c->into->rel));
      if (c->query != nullptr) collect_dml(c->query, st.objects);
      return;
    }
    case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
      set_class(st, C::ddl, "REFRESH MATERIALIZED VIEW");
      add_object(st.objects, range_var_name(n->refresh_mat_view_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_ALTER_SYSTEM_STMT:
      set_class(st, C::ddl, "ALTER SYSTEM");
      return;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT: {
      const auto k = n->variable_set_stmt->kind;
      set_class(
          st, C::none,
          (k == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET || k == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL)
              ? "RESET"
              : "SET");
      return;
    }
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
      set_class(st, C::none, "SHOW");
      return;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
      switch (n->discard_stmt->target) {
        case PG_QUERY__DISCARD_MODE__DISCARD_ALL:
          set_class(st, C::none, "DISCARD ALL");
          st.effect = PreparedEffect::deallocate_all;
          return;
        case PG_QUERY__DISCARD_MODE__DISCARD_PLANS:
          set_class(st, C::none, "DISCARD PLANS");
          return;
        case PG_QUERY__DISCARD_MODE__DISCARD_TEMP:
          set_class(st, C::none, "DISCARD TEMP");
          return;
        case PG_QUERY__DISCARD_MODE__DISCARD_SEQUENCES:
          set_class(st, C::none, "DISCARD SEQUENCES");
          return;
        default:
          set_class(st, C::none, "UNKNOWN");
          return;
      }
    case PG_QUERY__NODE__NODE_CREATE_TRANSFORM_STMT:
      set_class(st, C::ddl, "CREATE TRANSFORM");
      return;
    case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT:
      set_class(st, C::ddl, "CREATE TRIGGER");
      add_object(st.objects, range_var_name(n->create_trig_stmt->relation));
      return;
    case PG_QUERY__NODE__NODE_CREATE_EVENT_TRIG_STMT:
      set_class(st, C::ddl, "CREATE EVENT TRIGGER");
      return;
    case PG_QUERY__NODE__NODE_ALTER_EVENT_TRIG_STMT:
      set_class(st, C::ddl, "ALTER EVENT TRIGGER");
      return;
    case PG_QUERY__NODE__NODE_CREATE_PLANG_STMT:
      set_class(st, C::ddl, "CREATE LANGUAGE");
      return;
    case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
      set_class(st, C::ddl, "CREATE DOMAIN");
      return;
    case PG_QUERY__NODE__NODE_CREATE_ROLE_STMT:
      set_class(st, C::ddl, "CREATE ROLE");
      return;
    case PG_QUERY__NODE__NODE_ALTER_ROLE_STMT:
    case PG_QUERY__NODE__NODE_ALTER_ROLE_SET_STMT:
      set_class(st, C::ddl, "ALTER ROLE");
      return;
    case PG_QUERY__NODE__NODE_DROP_ROLE_STMT:
      set_class(st, C::ddl, "DROP ROLE");
      return;
    case PG_QUERY__NODE__NODE_DROP_OWNED_STMT:
      set_class(st, C::ddl, "DROP OWNED");
      return;
    case PG_QUERY__NODE__NODE_REASSIGN_OWNED_STMT:
      set_class(st, C::ddl, "REASSIGN OWNED");
      return;
    case PG_QUERY__NODE__NODE_LOCK_STMT:
      set_class(st, C::none, "LOCK TABLE");
      return;
    case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
      set_class(st, C::none, "SET CONSTRAINTS");
      return;
    case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
      set_class(st, C::none, "CHECKPOINT");
      return;
    case PG_QUERY__NODE__NODE_REINDEX_STMT:
      set_class(st, C::none, "REINDEX");
      return;  // utility.c: "should this be DDL?"
    case PG_QUERY__NODE__NODE_CREATE_CONVERSION_STMT:
      set_class(st, C::ddl, "CREATE CONVERSION");
      return;
    case PG_QUERY__NODE__NODE_CREATE_CAST_STMT:
      set_class(st, C::ddl, "CREATE CAST");
      return;
    case PG_QUERY__NODE__NODE_CREATE_OP_CLASS_STMT:
      set_class(st, C::ddl, "CREATE OPERATOR CLASS");
      return;
    case PG_QUERY__NODE__NODE_CREATE_OP_FAMILY_STMT:
      set_class(st, C::ddl, "CREATE OPERATOR FAMILY");
      return;
    case PG_QUERY__NODE__NODE_ALTER_OP_FAMILY_STMT:
      set_class(st, C::ddl, "ALTER OPERATOR FAMILY");
      return;
    case PG_QUERY__NODE__NODE_CREATE_POLICY_STMT:
      set_class(st, C::ddl, "CREATE POLICY");
      return;
    case PG_QUERY__NODE__NODE_ALTER_POLICY_STMT:
      set_class(st, C::ddl, "ALTER POLICY");
      return;
    case PG_QUERY__NODE__NODE_ALTER_TSDICTIONARY_STMT:
      set_class(st, C::ddl, "ALTER TEXT SEARCH DICTIONARY");
      return;
    case PG_QUERY__NODE__NODE_ALTER_TSCONFIGURATION_STMT:
      set_class(st, C::ddl, "ALTER TEXT SEARCH CONFIGURATION");
      return;
    case PG_QUERY__NODE__NODE_CREATE_AM_STMT:
      set_class(st, C::ddl, "CREATE ACCESS METHOD");
      return;
    case PG_QUERY__NODE__NODE_CREATE_PUBLICATION_STMT:
      set_class(st, C::ddl, "CREATE PUBLICATION");
      return;
    case PG_QUERY__NODE__NODE_ALTER_PUBLICATION_STMT:
      set_class(st, C::ddl, "ALTER PUBLICATION");
      return;
    case PG_QUERY__NODE__NODE_CREATE_SUBSCRIPTION_STMT:
      set_class(st, C::ddl, "CREATE SUBSCRIPTION");
      return;
    case PG_QUERY__NODE__NODE_ALTER_SUBSCRIPTION_STMT:
      set_class(st, C::ddl, "ALTER SUBSCRIPTION");
      return;
    case PG_QUERY__NODE__NODE_DROP_SUBSCRIPTION_STMT:
      set_class(st, C::ddl, "DROP SUBSCRIPTION");
      return;
    case PG_QUERY__NODE__NODE_CREATE_STATS_STMT:
      set_class(st, C::ddl, "CREATE STATISTICS");
      return;
    case PG_QUERY__NODE__NODE_ALTER_STATS_STMT:
      set_class(st, C::ddl, "ALTER STATISTICS");
      return;
    case PG_QUERY__NODE__NODE_ALTER_COLLATION_STMT:
      set_class(st, C::ddl, "ALTER COLLATION");
      return;
    default:
      // Not a statement the PostgreSQL 15 grammar produces at top level: fail closed.
      set_class(st, C::mod, "UNKNOWN");
      st.superset = Superset::not_parsed;
      return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Token path: a scanner for what decides statement boundaries in PostgreSQL's scan.l, which gives up (returns
// false) on anything it does not mirror exactly, and rules for the common statement shapes.

enum class Tok : std::uint8_t { word, qident, literal, param, lparen, rparen, semicolon, dot, other };
enum class Kw : std::uint8_t {
  none,
  select,
  with,
  insert,
  update,
  del,
  merge,
  into,
  for_,
  key,
  do_,
  from,
  only,
  set,
  as,
  values,
  default_,
  overriding,
  where,
  using_,
  returning,
  atomic,
  begin,
  commit,
  end,
  rollback,
  abort_,
  start,
  transaction,
};

struct Token {
  Tok kind;
  Kw kw;
  std::size_t begin;
  std::size_t end;
};

struct Piece {
  std::size_t begin, end;           // from after the previous ';' to before the next (or the end)
  std::size_t first_tok, last_tok;  // [first_tok, last_tok)
};

// Character classes of scan.l, one table lookup each: the lexer's loops run once per byte of every statement.
enum : std::uint8_t { kSpace = 1, kIdentStart = 2, kIdentCont = 4, kDigit = 8 };
constexpr std::array<std::uint8_t, 256> kCharClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (unsigned char c : {' ', '\t', '\n', '\r', '\f'})
    t[c] = kSpace;
  for (int c = 0; c < 256; ++c) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter || c == '_' || c >= 0x80) t[static_cast<std::size_t>(c)] = kIdentStart | kIdentCont;
    if (c >= '0' && c <= '9') t[static_cast<std::size_t>(c)] = kDigit | kIdentCont;
  }
  t['$'] = kIdentCont;
  return t;
}();
bool is_space(unsigned char c) {
  return (kCharClass[c] & kSpace) != 0;
}
bool is_ident_start(unsigned char c) {
  return (kCharClass[c] & kIdentStart) != 0;
}
bool is_ident_cont(unsigned char c) {
  return (kCharClass[c] & kIdentCont) != 0;
}
bool is_digit(unsigned char c) {
  return (kCharClass[c] & kDigit) != 0;
}

bool word_is(std::string_view w, std::string_view lower) {
  if (w.size() != lower.size()) return false;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if ((static_cast<unsigned char>(w[i]) | 0x20) != static_cast<unsigned char>(lower[i])) return false;
  }
  return true;
}

Kw keyword(std::string_view w) {
  struct Entry {
    std::string_view name;
    Kw kw;
  };
  if (w.size() < 2 || w.size() > 11) return Kw::none;
  // Candidates by first letter: most words are identifiers, rejected after a compare or two.
  auto match = [&](std::initializer_list<Entry> candidates) {
    for (const Entry& e : candidates) {
      if (word_is(w, e.name)) return e.kw;
    }
    return Kw::none;
  };
  switch (static_cast<unsigned char>(w[0]) | 0x20) {
    case 'a':
      return match({{"as", Kw::as}, {"atomic", Kw::atomic}, {"abort", Kw::abort_}});
    case 'b':
      return match({{"begin", Kw::begin}});
    case 'c':
      return match({{"commit", Kw::commit}});
    case 'd':
      return match({{"delete", Kw::del}, {"do", Kw::do_}, {"default", Kw::default_}});
    case 'e':
      return match({{"end", Kw::end}});
    case 'f':
      return match({{"from", Kw::from}, {"for", Kw::for_}});
    case 'i':
      return match({{"insert", Kw::insert}, {"into", Kw::into}});
    case 'k':
      return match({{"key", Kw::key}});
    case 'm':
      return match({{"merge", Kw::merge}});
    case 'o':
      return match({{"only", Kw::only}, {"overriding", Kw::overriding}});
    case 'r':
      return match({{"returning", Kw::returning}, {"rollback", Kw::rollback}});
    case 's':
      return match({{"select", Kw::select}, {"set", Kw::set}, {"start", Kw::start}});
    case 't':
      return match({{"transaction", Kw::transaction}});
    case 'u':
      return match({{"update", Kw::update}, {"using", Kw::using_}});
    case 'v':
      return match({{"values", Kw::values}});
    case 'w':
      return match({{"with", Kw::with}, {"where", Kw::where}});
    default:
      return Kw::none;
  }
}

// Closing quote of a quoted section starting after `i`; `backslash`: E'' rules. npos: give up.
std::size_t quoted_end(std::string_view s, std::size_t i, char quote, bool backslash) {
  while (i < s.size()) {
    const char c = s[i];
    if (c == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        i += 2;
        continue;
      }
      return i;
    }
    if (backslash && c == '\\') {
      if (i + 1 >= s.size()) return std::string_view::npos;
      const auto e = static_cast<unsigned char>(s[i + 1]);
      // Octal, hex and Unicode escapes can fail in the scanner (invalid code points, bad byte sequences).
      if (e >= 0x80 || e < 0x20 || (e >= '0' && e <= '7') || e == 'x' || e == 'u' || e == 'U')
        return std::string_view::npos;
      i += 2;
      continue;
    }
    ++i;
  }
  return std::string_view::npos;
}

// Tokens of `s` and its top-level pieces. False when the text has anything this scanner does not mirror
// exactly; `toks` then holds the tokens read so far.
bool lex(std::string_view s, std::vector<Token>& toks, std::vector<Piece>& pieces) {
  toks.clear();
  pieces.clear();
  std::size_t i = 0;
  std::size_t depth = 0;
  std::size_t piece_begin = 0;
  std::size_t piece_tok = 0;
  const std::size_t n = s.size();
  auto at = [&](std::size_t k) -> unsigned char { return k < n ? static_cast<unsigned char>(s[k]) : 0; };
  auto push = [&](Tok kind, std::size_t b, std::size_t e, Kw kw = Kw::none) {
    toks.push_back({kind, kw, b, e});
  };
  // After a quoted literal: 'a'<newline>'b' continues the literal with the first part's rules; give up.
  auto continued = [&](std::size_t k) {
    while (k < n && is_space(at(k)))
      ++k;
    return at(k) == '\'';
  };
  while (i < n) {
    const unsigned char c = at(i);
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (c == '-' && at(i + 1) == '-') {
      while (i < n && at(i) != '\n' && at(i) != '\r')
        ++i;
      continue;
    }
    if (c == '/' && at(i + 1) == '*') {
      std::size_t level = 1;
      i += 2;
      while (level > 0) {
        if (i + 1 >= n) return false;
        if (at(i) == '/' && at(i + 1) == '*') {
          ++level;
          i += 2;
        } else if (at(i) == '*' && at(i + 1) == '/') {
          --level;
          i += 2;
        } else {
          ++i;
        }
      }
      continue;
    }
    const std::size_t b = i;
    if (c == '\'' || ((c | 0x20) == 'e' && at(i + 1) == '\'') ||
        (((c | 0x20) == 'b' || (c | 0x20) == 'x' || (c | 0x20) == 'n') && at(i + 1) == '\'')) {
      const bool escapes = (c | 0x20) == 'e';
      const std::size_t open = c == '\'' ? i : i + 1;
      const std::size_t close = quoted_end(s, open + 1, '\'', escapes);
      if (close == std::string_view::npos || continued(close + 1)) return false;
      i = close + 1;
      push(Tok::literal, b, i);
      continue;
    }
    if ((c | 0x20) == 'u' && at(i + 1) == '&' && (at(i + 2) == '\'' || at(i + 2) == '"')) return false;
    if (c == '"') {
      const std::size_t close = quoted_end(s, i + 1, '"', false);
      if (close == std::string_view::npos || close == i + 1) return false;  // unterminated, zero-length
      i = close + 1;
      push(Tok::qident, b, i);
      continue;
    }
    if (is_ident_start(c)) {
      while (i < n && is_ident_cont(at(i)))
        ++i;
      push(Tok::word, b, i, keyword(s.substr(b, i - b)));
      if (toks.back().kw == Kw::atomic) return false;  // BEGIN ATOMIC bodies hold ';' (psql handles them too)
      continue;
    }
    if (c == '$') {
      if (is_digit(at(i + 1))) {
        ++i;
        while (is_digit(at(i)))
          ++i;
        if (is_ident_cont(at(i))) return false;
        push(Tok::param, b, i);
        continue;
      }
      std::size_t k = i + 1;
      if (is_ident_start(at(k))) {
        ++k;
        while (k < n && is_ident_cont(at(k)) && at(k) != '$')
          ++k;
      }
      if (at(k) != '$') return false;
      const std::string_view delim = s.substr(i, k + 1 - i);
      const std::size_t close = s.find(delim, k + 1);
      if (close == std::string_view::npos) return false;
      i = close + delim.size();
      push(Tok::literal, b, i);
      continue;
    }
    if (is_digit(c) || (c == '.' && is_digit(at(i + 1)))) {
      while (is_digit(at(i)))
        ++i;
      if (at(i) == '.') {
        ++i;
        while (is_digit(at(i)))
          ++i;
      }
      if ((at(i) | 0x20) == 'e') {
        ++i;
        if (at(i) == '+' || at(i) == '-') ++i;
        if (!is_digit(at(i))) return false;
        while (is_digit(at(i)))
          ++i;
      }
      if (is_ident_cont(at(i)) || at(i) == '.') return false;  // trailing junk, "1..2"
      push(Tok::literal, b, i);
      continue;
    }
    ++i;
    switch (c) {
      case '(':
        ++depth;
        push(Tok::lparen, b, i);
        break;
      case ')':
        if (depth == 0) return false;
        --depth;
        push(Tok::rparen, b, i);
        break;
      case ';':
        if (depth != 0) return false;  // CREATE RULE ... (a; b): the grammar decides
        if (toks.size() > piece_tok) pieces.push_back({piece_begin, b, piece_tok, toks.size()});
        piece_begin = i;
        piece_tok = toks.size();
        break;
      case '.':
        push(Tok::dot, b, i);
        break;
      default:
        if (c < 0x20 || c == '\\' || c == 0x7f) return false;
        push(Tok::other, b, i);
        break;
    }
  }
  if (depth != 0) return false;
  if (toks.size() > piece_tok) pieces.push_back({piece_begin, n, piece_tok, toks.size()});
  return true;
}

void trim(std::string_view s, std::size_t& begin, std::size_t& end) {
  while (begin < end && (is_space(static_cast<unsigned char>(s[begin])) || s[begin] == '\v'))
    ++begin;
  while (end > begin && (is_space(static_cast<unsigned char>(s[end - 1])) || s[end - 1] == '\v'))
    --end;
}

// A relation name of 1-3 parts at t[k...]; sets k past it. Names are folded and unquoted as the scanner does.
// `part` is scratch (kept by the caller so that a name costs no allocation once it has grown).
bool token_name(std::string_view s, const Token* t, std::size_t n, std::size_t& k, std::string& out,
                std::string& part) {
  out.clear();
  for (int i = 0; i < 3; ++i) {
    if (k >= n) return false;
    const Token& tok = t[k];
    part.clear();
    if (tok.kind == Tok::word) {
      part.assign(s.substr(tok.begin, tok.end - tok.begin));
      for (char& ch : part) {
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + ('a' - 'A'));
      }
    } else if (tok.kind == Tok::qident) {
      for (std::size_t j = tok.begin + 1; j + 1 < tok.end; ++j) {
        part += s[j];
        if (s[j] == '"') ++j;
      }
    } else {
      return false;
    }
    if (part.size() > kMaxIdentifier) return false;
    if (i > 0) out += '.';
    append_name_part(out, part);
    ++k;
    if (k < n && t[k].kind == Tok::dot) {
      ++k;
      continue;
    }
    return true;
  }
  return false;  // four or more parts
}

// The token rules. Returns false when they do not decide: the parser will.
bool decide_by_tokens(std::string_view s, const Token* t, std::size_t n, Statement& st, std::string& part) {
  if (n == 0 || t[0].kind != Tok::word) return false;
  const Kw first = t[0].kw;
  // `st` may be reused from an earlier text: a statement that writes nothing leaves no object behind.
  auto decided = [&](StatementClass cls, std::string_view command) {
    st.objects.clear();
    set_class(st, cls, command);
    return true;
  };
  if (n == 1) {
    switch (first) {
      case Kw::begin:
        return decided(StatementClass::none, "BEGIN");
      case Kw::commit:
      case Kw::end:
        return decided(StatementClass::none, "COMMIT");
      case Kw::rollback:
      case Kw::abort_:
        return decided(StatementClass::none, "ROLLBACK");
      default:
        break;
    }
  }
  if (n == 2 && first == Kw::start && t[1].kw == Kw::transaction) {
    return decided(StatementClass::none, "START TRANSACTION");
  }
  // No other data-modifying or INTO keyword past the leading ones. UPDATE is allowed after FOR / KEY (row
  // locks) and, in INSERT, after DO (ON CONFLICT DO UPDATE): a data-modifying statement inside a statement
  // can only appear as "AS (UPDATE".
  auto clean_from = [&](std::size_t k, bool allow_do_update) {
    for (; k < n; ++k) {
      switch (t[k].kw) {
        case Kw::into:
        case Kw::insert:
        case Kw::del:
        case Kw::merge:
          return false;
        case Kw::update: {
          const Kw prev = t[k - 1].kw;
          if (prev == Kw::for_ || prev == Kw::key || (allow_do_update && prev == Kw::do_)) break;
          return false;
        }
        default:
          break;
      }
    }
    return true;
  };
  // The written relation goes straight into objects[0]: a Statement reused for the next text keeps its
  // storage.
  st.objects.resize(1);
  std::string& name = st.objects[0];
  std::size_t k = 1;
  switch (first) {
    case Kw::select:
    case Kw::with:
      if (!clean_from(1, false)) return false;
      return decided(StatementClass::none, "SELECT");
    case Kw::insert: {
      if (n < 3 || t[1].kw != Kw::into) return false;
      k = 2;
      if (!token_name(s, t, n, k, name, part) || k >= n) return false;
      const Kw next = t[k].kw;
      if (!(t[k].kind == Tok::lparen || next == Kw::values || next == Kw::select || next == Kw::default_ ||
            next == Kw::overriding || next == Kw::as))
        return false;
      if (!clean_from(k, true)) return false;
      set_class(st, StatementClass::mod, "INSERT");
      break;
    }
    case Kw::update: {
      if (k < n && t[k].kw == Kw::only) ++k;
      if (!token_name(s, t, n, k, name, part) || k >= n) return false;
      if (!(t[k].kw == Kw::set || t[k].kw == Kw::as || t[k].kind == Tok::qident ||
            (t[k].kind == Tok::word && t[k].kw == Kw::none)))
        return false;
      if (!clean_from(k, false)) return false;
      set_class(st, StatementClass::mod, "UPDATE");
      break;
    }
    case Kw::del: {
      if (n < 3 || t[1].kw != Kw::from) return false;
      k = 2;
      if (k < n && t[k].kw == Kw::only) ++k;
      if (!token_name(s, t, n, k, name, part)) return false;
      if (k < n &&
          !(t[k].kw == Kw::where || t[k].kw == Kw::using_ || t[k].kw == Kw::as || t[k].kw == Kw::returning ||
            t[k].kind == Tok::qident || (t[k].kind == Tok::word && t[k].kw == Kw::none)))
        return false;
      if (!clean_from(k, false)) return false;
      set_class(st, StatementClass::mod, "DELETE");
      break;
    }
    default:
      return false;
  }
  return true;
}

// Leading-keyword rule for what neither the grammar nor the token rules decide: fail closed.
void decide_conservatively(std::string_view s, const std::vector<Token>& toks, bool lexed, Statement& st) {
  st.command = "UNKNOWN";
  st.superset = Superset::not_parsed;
  st.cls = StatementClass::mod;
  if (toks.empty() || toks[0].kind != Tok::word) return;
  const std::string_view w = s.substr(toks[0].begin, toks[0].end - toks[0].begin);
  static constexpr std::array<std::string_view, 11> kDdl{"create",  "alter",    "drop",     "grant",
                                                         "revoke",  "comment",  "security", "refresh",
                                                         "cluster", "reassign", "import"};
  // Not EXPLAIN (ANALYZE runs what it explains: an EXECUTE or CREATE TABLE AS holds no keyword checked
  // above), PREPARE (of CREATE TABLE AS, say), or FETCH and MOVE (of a portal bound to a write by the
  // extended protocol): unparsed, they count as writes.
  static constexpr std::array<std::string_view, 29> kRead{
      "select",     "with",    "values",     "table",    "show",   "set",       "reset",   "begin",
      "start",      "commit",  "end",        "rollback", "abort",  "savepoint", "release", "close",
      "declare",    "listen",  "notify",     "unlisten", "load",   "vacuum",    "analyze", "analyse",
      "checkpoint", "discard", "deallocate", "lock",     "reindex"};
  if (word_is(w, "do") || word_is(w, "call")) {
    st.cls = StatementClass::routine;
    return;
  }
  for (std::string_view d : kDdl) {
    if (word_is(w, d)) {
      st.cls = StatementClass::ddl;
      return;
    }
  }
  if (!lexed) return;
  for (const Token& tok : toks) {
    if (tok.kw == Kw::into || tok.kw == Kw::insert || tok.kw == Kw::update || tok.kw == Kw::del ||
        tok.kw == Kw::merge)
      return;
  }
  for (std::string_view r : kRead) {
    if (word_is(w, r)) {
      st.cls = StatementClass::none;
      return;
    }
  }
}

std::size_t approx_bytes(const std::vector<Statement>& v) {
  std::size_t b = sizeof(Statement) * v.capacity();
  for (const Statement& st : v) {
    b += st.prepared_name.capacity();
    for (const std::string& o : st.objects)
      b += sizeof(std::string) + o.capacity();
  }
  return b;
}

// Thread-local scratch for the token path (one Classifier per thread, but keep the class header lean).
struct Scratch {
  std::vector<Token> toks;
  std::vector<Piece> pieces;
  std::string name_part;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}
// A text of millions of tokens leaves no scratch of that size with the worker thread.
constexpr std::size_t kept_tokens = std::size_t{1} << 16;
void trim_scratch() {
  Scratch& s = scratch();
  if (s.toks.capacity() > kept_tokens) std::vector<Token>().swap(s.toks);
  if (s.pieces.capacity() > kept_tokens) std::vector<Piece>().swap(s.pieces);
}

// Classifies `piece` (a statement the whole-text parse could not give) on its own.
void classify_piece(std::string_view sql, std::size_t begin, std::size_t end, std::size_t max_parse_bytes,
                    std::vector<Statement>& out) {
  trim(sql, begin, end);
  if (begin >= end) return;
  const std::string_view piece = sql.substr(begin, end - begin);
  if (piece.size() <= max_parse_bytes) {
    const std::string text(piece);
    PgQueryProtobufParseResult r = pg_query_parse_protobuf(text.c_str());
    if (r.error == nullptr) {
      PgQuery__ParseResult* tree = pg_query__parse_result__unpack(
          nullptr, r.parse_tree.len, reinterpret_cast<const std::uint8_t*>(r.parse_tree.data));
      if (tree != nullptr) {
        for (std::size_t i = 0; i < tree->n_stmts; ++i) {
          const PgQuery__RawStmt* raw = tree->stmts[i];
          std::size_t b = static_cast<std::size_t>(std::max(raw->stmt_location, 0));
          std::size_t e = raw->stmt_len == 0 ? text.size() : b + static_cast<std::size_t>(raw->stmt_len);
          e = std::min(e, text.size());
          trim(text, b, e);
          if (b >= e || raw->stmt == nullptr) continue;
          Statement& st = out.emplace_back();
          st.offset = begin + b;
          st.length = e - b;
          classify_node(raw->stmt, st);
        }
        pg_query__parse_result__free_unpacked(tree, nullptr);
        pg_query_free_protobuf_parse_result(r);
        return;
      }
    }
    pg_query_free_protobuf_parse_result(r);
  }
  Scratch& sc = scratch();
  const bool lexed = lex(piece, sc.toks, sc.pieces);
  if (lexed && sc.toks.empty()) return;  // only comments
  Statement& st = out.emplace_back();
  st.offset = begin;
  st.length = end - begin;
  if (!(lexed && decide_by_tokens(piece, sc.toks.data(), sc.toks.size(), st, sc.name_part))) {
    st.objects.clear();
    decide_conservatively(piece, sc.toks, lexed, st);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

std::string_view class_name(StatementClass c) {
  switch (c) {
    case StatementClass::none:
      return "none";
    case StatementClass::ddl:
      return "ddl";
    case StatementClass::mod:
      return "mod";
    case StatementClass::routine:
      return "routine";
  }
  return "none";
}

std::string_view superset_name(Superset s) {
  switch (s) {
    case Superset::none:
      return "none";
    case Superset::modifying_with:
      return "modifying_with";
    case Superset::copy_dml_to:
      return "copy_dml_to";
    case Superset::select_into_setop:
      return "select_into_setop";
    case Superset::unknown_execute:
      return "unknown_execute";
    case Superset::not_parsed:
      return "not_parsed";
  }
  return "none";
}

void SqlPrepared::on_complete(const Statement& stmt) {
  switch (stmt.effect) {
    case PreparedEffect::prepare: {
      auto it = entries_.find(stmt.prepared_name);
      if (it == entries_.end()) {
        if (entries_.size() >= max_names_) return;  // not remembered: its EXECUTEs are classed mod
        it = entries_.emplace(stmt.prepared_name, Entry{}).first;
      }
      it->second.cls = stmt.cls;
      it->second.superset = stmt.superset;
      it->second.objects = stmt.objects;
      return;
    }
    case PreparedEffect::deallocate: {
      auto it = entries_.find(stmt.prepared_name);
      if (it != entries_.end()) entries_.erase(it);
      return;
    }
    case PreparedEffect::deallocate_all:
      entries_.clear();
      return;
    case PreparedEffect::none:
    case PreparedEffect::execute:
      return;
  }
}

const SqlPrepared::Entry* SqlPrepared::find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

Classifier::Classifier(ClassifierLimits limits) : limits_(limits) {}

std::vector<Statement> Classifier::classify(std::string_view sql, const SqlPrepared* session) {
  std::vector<Statement> out;
  classify(sql, session, out);
  return out;
}

void Classifier::classify(std::string_view sql, const SqlPrepared* session, std::vector<Statement>& out) {
  const std::size_t nul = sql.find('\0');
  if (nul != std::string_view::npos) sql = sql.substr(0, nul);

  // Without a cache (cache_entries = 0) nothing needs the hash.
  const bool caching = limits_.cache_entries > 0;
  const std::size_t hash = caching ? std::hash<std::string_view>{}(sql) : 0;
  const Slot* hit = caching ? find(sql, hash) : nullptr;
  if (hit != nullptr) {
    ++stats_.hits;
    const Slot& slot = *hit;
    // Copy out, reusing the caller's storage.
    out.resize(slot.value.size());
    for (std::size_t i = 0; i < slot.value.size(); ++i) {
      const Statement& src = slot.value[i];
      Statement& dst = out[i];
      dst.offset = src.offset;
      dst.length = src.length;
      dst.cls = src.cls;
      dst.command = src.command;
      dst.objects.assign(src.objects.begin(), src.objects.end());
      dst.superset = src.superset;
      dst.effect = src.effect;
      dst.prepared_name.assign(src.prepared_name);
    }
  } else {
    ++stats_.misses;
    // Computed into the caller's storage (its statements' strings keep their capacity): most such texts are
    // never seen again, and a cached copy is made only when one is.
    compute(sql, out);
    if (admit(hash)) {
      remember(sql, hash, out);
    } else {
      ++stats_.not_admitted;
    }
  }

  for (Statement& dst : out) {
    if (dst.effect == PreparedEffect::execute) {
      const SqlPrepared::Entry* e = session != nullptr ? session->find(dst.prepared_name) : nullptr;
      if (e != nullptr) {
        dst.cls = e->cls;
        dst.superset = e->superset;
        dst.objects.assign(e->objects.begin(), e->objects.end());
      } else {
        dst.cls = StatementClass::mod;
        dst.superset = Superset::unknown_execute;
        dst.objects.clear();
      }
    }
  }
}

void Classifier::compute(std::string_view sql, std::vector<Statement>& out) {
  if (limits_.fast_path && try_fast(sql, out)) {
    ++stats_.fast;
    trim_scratch();
    return;
  }
  out.clear();
  full(sql, out);
  trim_scratch();
}

bool Classifier::try_fast(std::string_view sql, std::vector<Statement>& out) {
  Scratch& sc = scratch();
  if (!lex(sql, sc.toks, sc.pieces)) return false;
  out.resize(sc.pieces.size());
  for (std::size_t i = 0; i < sc.pieces.size(); ++i) {
    const Piece& p = sc.pieces[i];
    Statement& st = out[i];
    std::size_t b = p.begin;
    std::size_t e = p.end;
    trim(sql, b, e);
    st.offset = b;
    st.length = e - b;
    // `out` is reused from the previous text (its strings keep their storage): what the token rules never
    // set starts over.
    st.superset = Superset::none;
    st.effect = PreparedEffect::none;
    st.prepared_name.clear();
    if (!decide_by_tokens(sql, sc.toks.data() + p.first_tok, p.last_tok - p.first_tok, st, sc.name_part))
      return false;
  }
  return true;
}

void Classifier::full(std::string_view sql, std::vector<Statement>& out) {
  if (sql.size() <= limits_.max_parse_bytes) {
    ++stats_.parsed;
    const std::string text(sql);
    PgQueryProtobufParseResult r = pg_query_parse_protobuf(text.c_str());
    PgQuery__ParseResult* tree = nullptr;
    if (r.error == nullptr) {
      tree = pg_query__parse_result__unpack(nullptr, r.parse_tree.len,
                                            reinterpret_cast<const std::uint8_t*>(r.parse_tree.data));
    }
    if (tree != nullptr) {
      for (std::size_t i = 0; i < tree->n_stmts; ++i) {
        const PgQuery__RawStmt* raw = tree->stmts[i];
        std::size_t b = static_cast<std::size_t>(std::max(raw->stmt_location, 0));
        std::size_t e = raw->stmt_len == 0 ? text.size() : b + static_cast<std::size_t>(raw->stmt_len);
        e = std::min(e, text.size());
        trim(text, b, e);
        if (b >= e || raw->stmt == nullptr) continue;
        Statement& st = out.emplace_back();
        st.offset = b;
        st.length = e - b;
        classify_node(raw->stmt, st);
      }
      pg_query__parse_result__free_unpacked(tree, nullptr);
      pg_query_free_protobuf_parse_result(r);
      return;
    }
    pg_query_free_protobuf_parse_result(r);
  }

  // The grammar rejects the text (the server will refuse all of it), or it is too large to parse whole:
  // statement boundaries from PostgreSQL's scanner, then each statement on its own.
  ++stats_.rejected;
  const std::string text(sql);
  PgQuerySplitResult split = pg_query_split_with_scanner(text.c_str());
  if (split.error != nullptr || split.n_stmts <= 0) {
    // Unscannable (unterminated literal or comment) or unbalanced parentheses: one statement, whole.
    pg_query_free_split_result(split);
    classify_piece(sql, 0, sql.size(), limits_.max_parse_bytes, out);
    return;
  }
  for (int i = 0; i < split.n_stmts; ++i) {
    const PgQuerySplitStmt* p = split.stmts[i];
    const std::size_t b = std::min(static_cast<std::size_t>(std::max(p->stmt_location, 0)), sql.size());
    const std::size_t e = std::min(b + static_cast<std::size_t>(std::max(p->stmt_len, 0)), sql.size());
    classify_piece(sql, b, e, limits_.max_parse_bytes, out);
  }
  pg_query_free_split_result(split);
}

const Classifier::Slot* Classifier::find(std::string_view sql, std::size_t hash) {
  if (!index_.ready()) index_.reset(limits_.cache_entries);
  const std::uint32_t at = index_.find(hash, [&](std::uint32_t slot) { return slots_[slot].key == sql; });
  if (at == detail::TextIndex::kNone) return nullptr;
  Slot& slot = slots_[at];
  slot.referenced = true;
  return &slot;
}

bool Classifier::admit(std::size_t hash) {
  return index_.admit(hash);  // false without a table: none is made with cache_entries = 0
}

void Classifier::remember(std::string_view sql, std::size_t hash, const std::vector<Statement>& value) {
  if (limits_.cache_entries == 0 || sql.size() > limits_.max_cached_text) return;
  const std::size_t bytes = sizeof(Slot) + sql.size() + approx_bytes(value);
  if (bytes > limits_.cache_bytes) return;
  while (index_.size() >= index_.max_entries() || bytes_ + bytes > limits_.cache_bytes) {
    if (!evict_one()) return;
  }
  std::size_t at = 0;
  if (!free_.empty()) {
    at = free_.back();
    free_.pop_back();
  } else {
    at = slots_.size();
    slots_.emplace_back();
  }
  if (!index_.insert(hash, static_cast<std::uint32_t>(at))) {
    free_.push_back(at);
    return;
  }
  Slot& slot = slots_[at];
  slot.key.assign(sql);
  slot.hash = hash;
  slot.value = value;
  slot.bytes = bytes;
  slot.used = true;
  slot.referenced = false;
  bytes_ += bytes;
}

bool Classifier::evict_one() {
  if (index_.size() == 0) return false;
  // CLOCK: a referenced slot gets a second chance; at most two sweeps find an unreferenced one.
  for (std::size_t step = 0; step < 2 * slots_.size() + 1; ++step) {
    if (hand_ >= slots_.size()) hand_ = 0;
    Slot& slot = slots_[hand_];
    const std::size_t at = hand_++;
    if (!slot.used) continue;
    if (slot.referenced) {
      slot.referenced = false;
      continue;
    }
    index_.erase(slot.hash, static_cast<std::uint32_t>(at));
    bytes_ -= slot.bytes;
    std::string().swap(slot.key);
    std::vector<Statement>().swap(slot.value);
    slot.used = false;
    free_.push_back(at);
    ++stats_.evictions;
    return true;
  }
  return false;
}

std::string redact_literals(std::string_view sql, std::size_t max_bytes) {
  const std::size_t nul = sql.find('\0');
  if (nul != std::string_view::npos) sql = sql.substr(0, nul);
  if (sql.size() > max_bytes) return std::string(kRedactionFailed);
  const std::string text(sql);
  PgQueryNormalizeResult r = pg_query_normalize(text.c_str());
  std::string out = (r.error == nullptr && r.normalized_query != nullptr) ? std::string(r.normalized_query)
                                                                          : std::string(kRedactionFailed);
  pg_query_free_normalize_result(r);
  return out;
}

}  // namespace pgw::audit
