"""A small fixed corpus and questions written for the retrieval tests: each question names the
document that answers it."""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "volcanoes.txt": (
        "Volcanoes form where magma from the Earth's mantle reaches the surface. An eruption "
        "throws out lava, ash and volcanic gases. Shield volcanoes such as those of Hawaii have "
        "gentle slopes built by runny basalt lava, while stratovolcanoes like Mount Fuji are "
        "steep cones of layered ash and lava. Geologists watch seismic tremors and gas emissions "
        "to predict eruptions."
    ),
    "sourdough.txt": (
        "Sourdough bread is leavened by a starter: a culture of wild yeast and lactic acid "
        "bacteria kept alive with flour and water. Bakers feed the starter daily, mix it into "
        "dough, let the dough ferment slowly for many hours, shape the loaf and bake it in a hot "
        "oven. The long fermentation gives the bread its sour flavour and chewy crust."
    ),
    "photosynthesis.txt": (
        "Photosynthesis is how green plants turn sunlight into chemical energy. Chlorophyll in "
        "the leaves absorbs light; the plant takes in carbon dioxide through its leaves and water "
        "through its roots, and produces glucose sugar and releases oxygen. It happens in the "
        "chloroplasts of plant cells."
    ),
    "chess.txt": (
        "Chess is a board game for two players on a board of sixty-four squares. Each player "
        "has a king, a queen, two rooks, two bishops, two knights and eight pawns. The goal is "
        "checkmate: attacking the opponent's king so that it cannot escape. Castling, en passant "
        "and pawn promotion are special moves of the game."
    ),
    "marathon.txt": (
        "A marathon is a long-distance running race of 42.195 kilometres. Runners train for "
        "months, building weekly mileage with long runs, and eat carbohydrates before the race "
        "to fill their glycogen stores. Many runners hit the wall near the twentieth mile when "
        "their energy runs out."
    ),
    "python.txt": (
        "Python is a programming language known for readable code. It uses indentation to "
        "define blocks, has dynamic typing, and ships with a large standard library. Developers "
        "install third-party packages with pip from the Python Package Index and write "
        "functions, classes and modules."
    ),
    "coffee.txt": (
        "Coffee beans are the roasted seeds of the coffee plant's cherries. Arabica and robusta "
        "are the main species. Roasting turns the green beans brown and develops aroma; "
        "espresso is brewed by forcing hot water through finely ground coffee under pressure. "
        "Caffeine in coffee keeps drinkers awake."
    ),
    "honeybees.txt": (
        "Honeybees live in colonies with one queen, thousands of female worker bees and male "
        "drones. Workers collect nectar and pollen from flowers, make honey and wax in the hive, "
        "and communicate the location of flowers with a waggle dance. Bees pollinate many crops."
    ),
    "tides.txt": (
        "Ocean tides are the rise and fall of sea levels caused by the gravity of the Moon and "
        "the Sun. Most coasts have two high tides and two low tides each day. Spring tides, with "
        "the largest range, happen at new moon and full moon."
    ),
    "guitar.txt": (
        "A guitar is a string instrument with six strings, usually tuned E A D G B E. The player "
        "frets notes with one hand and strums or plucks the strings with the other. Acoustic "
        "guitars have a hollow wooden body; electric guitars use pickups and an amplifier."
    ),
}

QUESTIONS: list[tuple[str, str]] = [
    ("How do volcanoes erupt lava and ash?", "volcanoes.txt"),
    ("Which volcano types have steep cones or gentle slopes?", "volcanoes.txt"),
    ("How is sourdough bread leavened with a starter?", "sourdough.txt"),
    ("Why does the dough ferment for hours before baking the loaf?", "sourdough.txt"),
    ("How do plants turn sunlight into energy?", "photosynthesis.txt"),
    ("What does chlorophyll in the leaves absorb?", "photosynthesis.txt"),
    ("What pieces does each chess player have?", "chess.txt"),
    ("What is checkmate of the king in chess?", "chess.txt"),
    ("How long is a marathon running race in kilometres?", "marathon.txt"),
    ("Why do runners hit the wall during a long race?", "marathon.txt"),
    ("How do developers install packages for the Python programming language?", "python.txt"),
    ("Does Python use indentation to define code blocks?", "python.txt"),
    ("How is espresso coffee brewed?", "coffee.txt"),
    ("What happens when coffee beans are roasted?", "coffee.txt"),
    ("Who lives in a honeybee colony with the queen?", "honeybees.txt"),
    ("How do bees tell the hive where flowers are?", "honeybees.txt"),
    ("What causes ocean tides to rise and fall?", "tides.txt"),
    ("When do spring tides with the largest range happen?", "tides.txt"),
    ("How many strings does a guitar have and how is it tuned?", "guitar.txt"),
    ("How does an electric guitar differ from an acoustic one?", "guitar.txt"),
]
