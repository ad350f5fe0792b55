package meshops.spark;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.catalyst.analysis.NoSuchViewException;
import org.apache.spark.sql.catalyst.analysis.NonEmptyNamespaceException;
import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.ViewAlreadyExistsException;
import org.apache.spark.sql.catalyst.catalog.CatalogTableType;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.connector.catalog.CatalogPlugin;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.NamespaceChange;
import org.apache.spark.sql.connector.catalog.Relation;
import org.apache.spark.sql.connector.catalog.RelationCatalog;
import org.apache.spark.sql.connector.catalog.SupportsNamespaces;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCatalog;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.catalog.TableInfo;
import org.apache.spark.sql.connector.catalog.TableWritePrivilege;
import org.apache.spark.sql.connector.catalog.V1Table;
import org.apache.spark.sql.connector.catalog.View;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * A Unity-Catalog-like catalog for local Spark, registered once per catalog name.
 *
 * <p>Schema {@code s} of catalog {@code c} is database {@code c__s} of the session catalog (the
 * Hive metastore): names get three levels, catalogs keep their schemas apart, and the one
 * persistent metastore still stores everything. Every call is delegated to the session catalog
 * with the mapped name. Reads get the session catalog's {@link V1Table} (as a {@link
 * ReadableTable}); writers get a
 * {@link MappedTable} that inserts into the mapped table, because Spark's writers fall back to
 * two-level names (and so to the wrong database) when they are handed a {@code V1Table}. Views
 * are metastore views in the mapped database, made by Spark's own CREATE VIEW (see {@link
 * Views}).
 */
public final class UnityCatalog implements RelationCatalog, SupportsNamespaces {
  /** Between catalog and schema in a metastore database name; never inside a catalog name. */
  public static final String SEPARATOR = "__";

  private String name;

  @Override
  public void initialize(String name, CaseInsensitiveStringMap options) {
    if (name.contains(SEPARATOR) || !name.equals(name.toLowerCase(Locale.ROOT))) {
      throw new IllegalArgumentException(
          "catalog name '" + name + "' must be lower case without '" + SEPARATOR + "'");
    }
    this.name = name;
  }

  @Override
  public String name() {
    return name;
  }

  /** Like Unity Catalog, {@code USE c} lands in schema {@code default}. */
  @Override
  public String[] defaultNamespace() {
    return new String[] {"default"};
  }

  // ---- mapping ---------------------------------------------------------------------------

  private static CatalogPlugin sessionCatalog() {
    return SparkSession.active().sessionState().catalogManager().v2SessionCatalog();
  }

  private static TableCatalog tables() {
    return (TableCatalog) sessionCatalog();
  }

  private static SupportsNamespaces namespaces() {
    return (SupportsNamespaces) sessionCatalog();
  }

  /** Metastore database holding schema {@code schema} of this catalog. */
  String database(String schema) {
    return name + SEPARATOR + schema.toLowerCase(Locale.ROOT);
  }

  private String[] userNamespace(String[] namespace) {
    String[] parts = new String[namespace.length + 1];
    parts[0] = name;
    System.arraycopy(namespace, 0, parts, 1, namespace.length);
    return parts;
  }

  private Identifier userIdentifier(Identifier ident) {
    return Identifier.of(userNamespace(ident.namespace()), ident.name());
  }

  /** {@code catalog.schema.table} as Unity Catalog spells it (lower case). */
  String fullName(Identifier ident) {
    return (name + "." + String.join(".", ident.namespace()) + "." + ident.name())
        .toLowerCase(Locale.ROOT);
  }

  private String[] mapNamespace(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length != 1) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
    return new String[] {database(namespace[0])};
  }

  private Identifier mapTable(Identifier ident) throws NoSuchTableException {
    if (ident.namespace().length != 1) {
      throw new NoSuchTableException(userIdentifier(ident));
    }
    return Identifier.of(new String[] {database(ident.namespace()[0])}, ident.name());
  }

  private Identifier mapNewTable(Identifier ident) throws NoSuchNamespaceException {
    return Identifier.of(mapNamespace(ident.namespace()), ident.name());
  }

  // ---- tables ----------------------------------------------------------------------------

  @Override
  public Identifier[] listTables(String[] namespace) throws NoSuchNamespaceException {
    String[] mapped = mapNamespace(namespace);
    if (!namespaces().namespaceExists(mapped)) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
    Set<String> viewNames = new HashSet<>(views().list(mapped[0]));
    List<Identifier> found = new ArrayList<>();
    for (Identifier ident : tables().listTables(mapped)) {
      // the session catalog lists temporary views (no schema) and views (listViews) too
      if (ident.namespace().length == 1
          && ident.namespace()[0].equals(mapped[0])
          && !viewNames.contains(ident.name())) {
        String schema = namespace[0].toLowerCase(Locale.ROOT);
        found.add(Identifier.of(new String[] {schema}, ident.name()));
      }
    }
    return found.toArray(new Identifier[0]);
  }

  /** The table, or for a metastore view the {@link View} Spark expands. */
  @Override
  public Relation loadRelation(Identifier ident) throws NoSuchTableException {
    Identifier mapped = mapTable(ident);
    Table table;
    try {
      table = tables().loadTable(mapped);
    } catch (NoSuchTableException e) {
      throw new NoSuchTableException(userIdentifier(ident));
    }
    if (table instanceof V1Table v1 && v1.catalogTable().tableType() == CatalogTableType.VIEW()) {
      View view = views().load(mapped);
      if (view == null) {
        throw new NoSuchTableException(userIdentifier(ident));
      }
      return view;
    }
    if (table instanceof V1Table v1) {
      return new ReadableTable(fullName(ident), v1.catalogTable());
    }
    return table;
  }

  @Override
  public Table loadTable(Identifier ident) throws NoSuchTableException {
    if (loadRelation(ident) instanceof Table table) {
      return table;
    }
    throw new NoSuchTableException(userIdentifier(ident));
  }

  /** What writers load: a table that writes to the mapped database (see the class comment). */
  @Override
  public Table loadTable(Identifier ident, Set<TableWritePrivilege> privileges)
      throws NoSuchTableException {
    Table table = loadTable(ident);
    // saveAsTable and INSERT OVERWRITE ask for INSERT and DELETE; only row-level commands
    // (MERGE, UPDATE, DELETE FROM) ask for UPDATE or for DELETE alone
    if (privileges.contains(TableWritePrivilege.UPDATE)
        || (privileges.contains(TableWritePrivilege.DELETE)
            && !privileges.contains(TableWritePrivilege.INSERT))) {
      throw new IllegalArgumentException(
          "MERGE INTO, UPDATE and DELETE FROM "
              + fullName(ident)
              + " need a Delta table, which local Spark does not have: compute the new rows and"
              + " overwrite the table (saveAsTable or INSERT OVERWRITE), or run on a workspace");
    }
    return writable(ident, table, null);
  }

  @Override
  public Table loadTable(Identifier ident, String version) throws NoSuchTableException {
    return tables().loadTable(mapTable(ident), version);
  }

  @Override
  public Table loadTable(Identifier ident, long timestamp) throws NoSuchTableException {
    return tables().loadTable(mapTable(ident), timestamp);
  }

  private Table writable(Identifier ident, Table table, Column[] columns) {
    if (table instanceof V1Table v1 && v1.catalogTable().tableType() != CatalogTableType.VIEW()) {
      return new MappedTable(fullName(ident), v1.catalogTable(), columns);
    }
    return table;
  }

  @Override
  public void invalidateTable(Identifier ident) {
    try {
      tables().invalidateTable(mapTable(ident));
    } catch (NoSuchTableException e) {
      // a name with a nested namespace cannot be cached
    }
  }

  @Override
  public Table createTable(Identifier ident, TableInfo info)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    Identifier mapped = mapNewTable(ident);
    if (!namespaces().namespaceExists(mapped.namespace())) {
      throw new NoSuchNamespaceException(userNamespace(ident.namespace()));
    }
    Map<String, String> props = new HashMap<>(info.properties());
    if ("delta".equalsIgnoreCase(props.get(TableCatalog.PROP_PROVIDER))) {
      throw new IllegalArgumentException(
          "USING DELTA for "
              + fullName(ident)
              + ": local Spark has no Delta Lake; leave out USING (Databricks makes Delta tables"
              + " by default)");
    }
    // a Hive-format table tracks its partitions in the metastore, which a V1Table read from a
    // catalog other than spark_catalog cannot use: always create data source tables
    props.putIfAbsent(
        TableCatalog.PROP_PROVIDER,
        SparkSession.active().sessionState().conf().defaultDataSourceName());
    TableInfo withProvider =
        new TableInfo.Builder()
            .withColumns(info.columns())
            .withPartitions(info.partitions())
            .withConstraints(info.constraints())
            .withProperties(props)
            .build();
    try {
      tables().createTable(mapped, withProvider);
    } catch (TableAlreadyExistsException e) {
      throw new TableAlreadyExistsException(userIdentifier(ident));
    }
    TaskWrites.record(SparkSession.active().sparkContext(), fullName(ident));
    try {
      return writable(ident, tables().loadTable(mapped), info.columns());
    } catch (NoSuchTableException e) {
      throw new IllegalStateException("table " + fullName(ident) + " vanished after creation", e);
    }
  }

  @Override
  @SuppressWarnings("deprecation")
  public Table createTable(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    return createTable(
        ident,
        new TableInfo.Builder()
            .withColumns(columns)
            .withPartitions(partitions)
            .withProperties(properties)
            .build());
  }

  @Override
  public Table alterTable(Identifier ident, TableChange... changes) throws NoSuchTableException {
    tables().alterTable(mapTable(ident), changes);
    return loadTable(ident);
  }

  @Override
  public boolean dropTable(Identifier ident) {
    try {
      return tables().dropTable(mapTable(ident));
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  @Override
  public boolean purgeTable(Identifier ident) {
    try {
      return tables().purgeTable(mapTable(ident));
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  @Override
  public void renameTable(Identifier oldIdent, Identifier newIdent)
      throws NoSuchTableException, TableAlreadyExistsException {
    Identifier mappedNew;
    try {
      mappedNew = renameTarget(oldIdent, newIdent);
    } catch (NoSuchNamespaceException e) {
      throw new NoSuchTableException(userIdentifier(newIdent));
    }
    tables().renameTable(mapTable(oldIdent), mappedNew);
  }

  /** The mapped new name of a rename: {@code t2}, {@code s.t2} or {@code c.s.t2}. */
  private Identifier renameTarget(Identifier oldIdent, Identifier newIdent)
      throws NoSuchNamespaceException {
    String[] target = newIdent.namespace();
    if (target.length == 0) {
      target = oldIdent.namespace();
    } else if (target.length == 2 && target[0].equals(name)) {
      target = new String[] {target[1]};
    }
    return mapNewTable(Identifier.of(target, newIdent.name()));
  }

  // ---- views -----------------------------------------------------------------------------

  private Views views() {
    return new Views(SparkSession.active());
  }

  @Override
  public Identifier[] listViews(String[] namespace) throws NoSuchNamespaceException {
    String[] mapped = mapNamespace(namespace);
    if (!namespaces().namespaceExists(mapped)) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
    List<Identifier> found = new ArrayList<>();
    for (String view : views().list(mapped[0])) {
      found.add(Identifier.of(new String[] {namespace[0].toLowerCase(Locale.ROOT)}, view));
    }
    return found.toArray(new Identifier[0]);
  }

  @Override
  public View createView(Identifier ident, View view)
      throws ViewAlreadyExistsException, NoSuchNamespaceException {
    Identifier mapped = mapNewTable(ident);
    if (!namespaces().namespaceExists(mapped.namespace())) {
      throw new NoSuchNamespaceException(userNamespace(ident.namespace()));
    }
    if (tables().tableExists(mapped)) {
      throw new ViewAlreadyExistsException(userIdentifier(ident));
    }
    views().create(mapped, view, false);
    try {
      return loadView(ident);
    } catch (NoSuchViewException e) {
      throw new IllegalStateException("view " + fullName(ident) + " vanished after creation", e);
    }
  }

  @Override
  public View replaceView(Identifier ident, View view) throws NoSuchViewException {
    Identifier mapped;
    try {
      mapped = mapTable(ident);
    } catch (NoSuchTableException e) {
      throw new NoSuchViewException(userIdentifier(ident));
    }
    if (views().load(mapped) == null) {
      throw new NoSuchViewException(userIdentifier(ident));
    }
    views().create(mapped, view, true);
    return loadView(ident);
  }

  @Override
  public boolean dropView(Identifier ident) {
    try {
      return views().drop(mapTable(ident));
    } catch (NoSuchTableException e) {
      return false;
    }
  }

  @Override
  public void renameView(Identifier oldIdent, Identifier newIdent)
      throws NoSuchViewException, ViewAlreadyExistsException {
    Identifier from;
    Identifier to;
    try {
      from = mapTable(oldIdent);
      to = renameTarget(oldIdent, newIdent);
    } catch (NoSuchTableException | NoSuchNamespaceException e) {
      throw new NoSuchViewException(userIdentifier(oldIdent));
    }
    if (views().load(from) == null) {
      throw new NoSuchViewException(userIdentifier(oldIdent));
    }
    if (tables().tableExists(to)) {
      throw new ViewAlreadyExistsException(userIdentifier(newIdent));
    }
    views().rename(from, to);
  }

  // ---- schemas ---------------------------------------------------------------------------

  @Override
  public String[][] listNamespaces() throws NoSuchNamespaceException {
    String prefix = name + SEPARATOR;
    List<String[]> schemas = new ArrayList<>();
    for (String[] db : namespaces().listNamespaces()) {
      if (db.length == 1 && db[0].startsWith(prefix) && db[0].length() > prefix.length()) {
        schemas.add(new String[] {db[0].substring(prefix.length())});
      }
    }
    return schemas.toArray(new String[0][]);
  }

  @Override
  public String[][] listNamespaces(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length == 0) {
      return listNamespaces();
    }
    if (namespaceExists(namespace)) {
      return new String[0][];
    }
    throw new NoSuchNamespaceException(userNamespace(namespace));
  }

  @Override
  public boolean namespaceExists(String[] namespace) {
    return namespace.length == 1
        && namespaces().namespaceExists(new String[] {database(namespace[0])});
  }

  @Override
  public Map<String, String> loadNamespaceMetadata(String[] namespace)
      throws NoSuchNamespaceException {
    try {
      return namespaces().loadNamespaceMetadata(mapNamespace(namespace));
    } catch (NoSuchNamespaceException e) {
      throw new NoSuchNamespaceException(userNamespace(namespace));
    }
  }

  @Override
  public void createNamespace(String[] namespace, Map<String, String> metadata)
      throws NamespaceAlreadyExistsException {
    if (namespace.length != 1) {
      throw new IllegalArgumentException(
          "a schema name has one part: " + String.join(".", userNamespace(namespace)));
    }
    try {
      namespaces().createNamespace(new String[] {database(namespace[0])}, metadata);
    } catch (NamespaceAlreadyExistsException e) {
      throw new NamespaceAlreadyExistsException(userNamespace(namespace));
    }
  }

  @Override
  public void alterNamespace(String[] namespace, NamespaceChange... changes)
      throws NoSuchNamespaceException {
    namespaces().alterNamespace(mapNamespace(namespace), changes);
  }

  @Override
  public boolean dropNamespace(String[] namespace, boolean cascade)
      throws NoSuchNamespaceException, NonEmptyNamespaceException {
    try {
      return namespaces().dropNamespace(mapNamespace(namespace), cascade);
    } catch (NonEmptyNamespaceException e) {
      throw new NonEmptyNamespaceException(userNamespace(namespace));
    } catch (AnalysisException e) {
      if ("SCHEMA_NOT_EMPTY".equals(e.getCondition())) {
        throw new NonEmptyNamespaceException(userNamespace(namespace));
      }
      throw e;
    }
  }
}
