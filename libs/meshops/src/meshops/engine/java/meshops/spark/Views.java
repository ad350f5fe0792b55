package meshops.spark;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.CatalogTableType;
import org.apache.spark.sql.catalyst.catalog.SessionCatalog;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.View;

import scala.Option;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Views of a {@link UnityCatalog}: metastore views in the mapped database.
 *
 * <p>They are created with Spark's own {@code CREATE VIEW} on the mapped name, run in the session
 * and thread of the user's statement, so Spark records the current catalog, namespace and SQL
 * settings exactly as for a view of the session catalog, and reads expand them the same way.
 */
final class Views {
  /** Properties Spark sets or reserves itself; passing them back in TBLPROPERTIES fails. */
  private static final Set<String> RESERVED =
      Set.of(
          "comment",
          "collation",
          "owner",
          "provider",
          "location",
          "external",
          "is_managed_location",
          "table_type",
          "create_engine_version",
          "engine_version",
          "transient_lastDdlTime");

  private final SparkSession spark;

  Views(SparkSession spark) {
    this.spark = spark;
  }

  private SessionCatalog catalog() {
    return spark.sessionState().catalog();
  }

  private static TableIdentifier v1(Identifier mapped) {
    return new TableIdentifier(mapped.name(), Option.apply(mapped.namespace()[0]));
  }

  private static String target(Identifier mapped) {
    return "spark_catalog." + quote(mapped.namespace()[0]) + "." + quote(mapped.name());
  }

  static String quote(String part) {
    return "`" + part.replace("`", "``") + "`";
  }

  static String literal(String text) {
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'";
  }

  List<String> list(String database) {
    List<String> names = new ArrayList<>();
    for (TableIdentifier id : CollectionConverters.asJava(catalog().listViews(database, "*"))) {
      if (id.database().isDefined() && id.database().get().equals(database)) {
        names.add(id.table());
      }
    }
    return names;
  }

  /** The view at {@code mapped}, or null when there is none (or a table is there). */
  View load(Identifier mapped) {
    TableIdentifier id = v1(mapped);
    if (!catalog().tableExists(id)) {
      return null;
    }
    CatalogTable table;
    try {
      table = catalog().getTableMetadata(id);
    } catch (Exception e) {
      return null;
    }
    if (table.tableType() != CatalogTableType.VIEW()) {
      return null;
    }
    List<String> catalogAndNamespace =
        new ArrayList<>(CollectionConverters.asJava(table.viewCatalogAndNamespace()));
    View.Builder builder =
        new View.Builder()
            .withQueryText(table.viewText().isDefined() ? table.viewText().get() : "")
            .withSqlConfigs(CollectionConverters.asJava(table.viewSQLConfigs()))
            .withSchemaMode(table.viewSchemaMode().toString())
            .withQueryColumnNames(
                CollectionConverters.asJava(table.viewQueryColumnNames()).toArray(new String[0]));
    if (!catalogAndNamespace.isEmpty()) {
      builder
          .withCurrentCatalog(catalogAndNamespace.get(0))
          .withCurrentNamespace(
              catalogAndNamespace.subList(1, catalogAndNamespace.size()).toArray(new String[0]));
    }
    builder
        .withSchema(table.schema())
        .withProperties(CollectionConverters.asJava(table.properties()));
    if (table.comment().isDefined()) {
      builder.withComment(table.comment().get());
    }
    return builder.build();
  }

  void create(Identifier mapped, View view, boolean replace) {
    StringBuilder sql = new StringBuilder("CREATE ");
    if (replace) {
      sql.append("OR REPLACE ");
    }
    sql.append("VIEW ").append(target(mapped));
    sql.append(columnList(view));
    String mode = view.schemaMode();
    if (mode != null && !mode.isEmpty()) {
      sql.append(" WITH SCHEMA ").append(mode);
    }
    Map<String, String> properties = view.properties();
    String comment = properties.get("comment");
    if (comment != null) {
      sql.append(" COMMENT ").append(literal(comment));
    }
    List<String> user = new ArrayList<>();
    for (Map.Entry<String, String> property : properties.entrySet()) {
      String key = property.getKey();
      if (!RESERVED.contains(key) && !key.startsWith("view.") && !key.startsWith("option.")) {
        user.add(literal(key) + " = " + literal(property.getValue()));
      }
    }
    if (!user.isEmpty()) {
      sql.append(" TBLPROPERTIES (").append(String.join(", ", user)).append(")");
    }
    sql.append(" AS ").append(view.queryText());
    spark.sql(sql.toString());
  }

  /** The column list, only when it renames or documents the query's columns. */
  private static String columnList(View view) {
    Column[] columns = view.columns();
    String[] queryNames = view.queryColumnNames();
    boolean needed = queryNames == null || queryNames.length != columns.length;
    List<String> parts = new ArrayList<>();
    for (int i = 0; i < columns.length; i++) {
      String part = quote(columns[i].name());
      if (columns[i].comment() != null) {
        part += " COMMENT " + literal(columns[i].comment());
        needed = true;
      }
      if (!needed && !columns[i].name().equals(queryNames[i])) {
        needed = true;
      }
      parts.add(part);
    }
    return needed && !parts.isEmpty() ? " (" + String.join(", ", parts) + ")" : "";
  }

  boolean drop(Identifier mapped) {
    if (load(mapped) == null) {
      return false;
    }
    spark.sql("DROP VIEW " + target(mapped));
    return true;
  }

  void rename(Identifier from, Identifier to) {
    // RENAME TO takes at most two parts; they name a database of the session catalog here
    spark.sql(
        "ALTER VIEW "
            + target(from)
            + " RENAME TO "
            + quote(to.namespace()[0])
            + "."
            + quote(to.name()));
  }
}
